"Build the wheel a user would install and use it the way a new user would: offline, from another folder."
import os, subprocess, sys, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("tinygpt-*.whl")
    return whl

def test_wheel_ships_library_and_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for mod in ("tokenizer", "data", "attention", "layers", "model", "generate", "moe", "kernels", "training", "hub", "widgets", "cli", "exercises/core", "exercises/tokenizer"):
        assert f"tinygpt/{mod}.py" in names, f"tinygpt/{mod}.py missing from the wheel"
    for asset in ("tinygpt/assets/default/config.json", "tinygpt/assets/default/model.safetensors", "tinygpt/assets/default/README.md"):
        assert asset in names, f"{asset} missing from the wheel"
    assert sum(n.startswith("tinygpt/assets/tiktoken/") for n in names) >= 2, "bundled tokenizer files missing"
    assert any(n.startswith("tinygpt/assets/tinystories/") and n.endswith(".txt") for n in names), "bundled sample text missing"
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tinygpt = tinygpt.cli:main" in zipfile.ZipFile(wheel).read(meta).decode()

def test_installed_wheel_generates_offline(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    code = "import tinygpt, sys; assert tinygpt.__file__.startswith(sys.argv[1]), tinygpt.__file__; from tinygpt.cli import main; main(sys.argv[2:])"
    r = subprocess.run([sys.executable, "-c", code, str(site), "generate", "--prompt", "Once upon a time", "--max-new-tokens", "30", "--seed", "0"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Once upon a time") and len(r.stdout.split()) > 8, r.stdout
