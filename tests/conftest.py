import os, sys, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if (SHARED / "tiktoken-cache").is_dir(): os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken-cache"))
os.environ.setdefault("MPLBACKEND", "Agg")

@pytest.fixture
def root(): return ROOT

@pytest.fixture
def shared_dir():
    if not SHARED.is_dir(): pytest.skip(f"no shared data folder at {SHARED}")
    return SHARED
