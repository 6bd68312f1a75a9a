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

class FullDisk:
    "A file object that accepts `limit` bytes, then fails with ENOSPC like a full disk (wraps a real file)."
    def __init__(self, f, limit=100): self.f, self.n, self.limit = f, 0, limit
    def __enter__(self): return self
    def __exit__(self, *a): self.f.close()
    def fileno(self): return self.f.fileno()
    def flush(self): self.f.flush()
    def write(self, b):
        self.n += len(b)
        if self.n > self.limit: raise OSError(28, "No space left on device")
        return self.f.write(b)
