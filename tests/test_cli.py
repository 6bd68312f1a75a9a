"End-to-end tests of the `tinygpt` command line (nbs/11_cli.ipynb): train, stop-at + resume, generate, errors."
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--preset", "tiny", "--data", "sample", "--batch-size", "2", "--block-size", "32", "--max-steps", "6",
         "--eval-every", "3", "--eval-batches", "1", "--dtype", "fp32", "--device", "cpu", "--seed", "0", "--quiet"]

def tinygpt(*argv, cwd=None):
    "Run `python -m tinygpt.cli ARGV` -> CompletedProcess (text)."
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "tinygpt.cli", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)

def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r

def one_line_error(r, *words):
    "A user mistake: non-zero exit, exactly one line on stderr naming the problem, no traceback."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0, f"expected a failure, got exit 0:\n{r.stdout}"
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    for w in words: assert w.lower() in lines[0].lower(), f"{w!r} not in {lines[0]!r}"
    return lines[0]

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "Two runs of the same 6 steps: straight, and stopped at 3 then resumed (settings and data from the run folder)."
    d = tmp_path_factory.mktemp("runs")
    ok(tinygpt("train", *SMALL, "--out", d / "straight"))
    ok(tinygpt("train", *SMALL, "--out", d / "resumed", "--stop-at", "3"))
    ok(tinygpt("train", "--out", d / "resumed", "--resume", "--quiet"))
    return d

def _ck(path): return torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
def _metrics(path): return [json.loads(l) for l in (path / "metrics.jsonl").read_text().splitlines()]

def test_stop_at_then_resume_equals_straight_run(runs):
    a, b = _ck(runs / "straight"), _ck(runs / "resumed")
    assert a["step"] == b["step"] == 6
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]: assert torch.equal(a["model"][k], b["model"][k]), k
    ma, mb = _metrics(runs / "straight"), _metrics(runs / "resumed")
    assert [m["step"] for m in mb] == list(range(1, 7))
    assert [m["loss"] for m in ma] == [m["loss"] for m in mb]
    assert ma[-1]["val_loss"] == mb[-1]["val_loss"]

def test_stop_at_stops_with_a_checkpoint(tmp_path):
    ok(tinygpt("train", *SMALL, "--out", tmp_path, "--stop-at", "2"))
    assert _ck(tmp_path)["step"] == 2
    assert len(_metrics(tmp_path)) == 2

def test_generate_streams_and_seed_repeats(runs):
    argv = ["generate", "--checkpoint", runs / "straight", "--prompt", "Once upon a time", "--max-new-tokens", "8", "--seed", "3"]
    r1, r2 = ok(tinygpt(*argv)), ok(tinygpt(*argv))
    assert r1.stdout.startswith("Once upon a time") and len(r1.stdout) > len("Once upon a time\n")
    assert r1.stdout == r2.stdout

def test_generate_from_the_bundled_model():
    if not (ROOT / "tinygpt" / "assets" / "default" / "model.safetensors").exists(): pytest.skip("no bundled model")
    r = ok(tinygpt("generate", "--prompt", "Once upon a time", "--max-new-tokens", "20", "--seed", "0"))
    assert r.stdout.startswith("Once upon a time") and len(r.stdout.split()) > 4

def test_export_round_trip(runs, tmp_path):
    ok(tinygpt("export", runs / "straight", tmp_path / "model", "--dtype", "fp16"))
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "model").iterdir()}
    r = ok(tinygpt("generate", "--checkpoint", tmp_path / "model", "--prompt", "Hi", "--max-new-tokens", "3", "--seed", "0"))
    assert r.stdout.startswith("Hi")

def test_missing_checkpoint(tmp_path):
    one_line_error(tinygpt("generate", "--checkpoint", tmp_path / "nope", "--prompt", "Hi"), "no checkpoint")

def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"; bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    one_line_error(tinygpt("generate", "--checkpoint", bad, "--prompt", "Hi"), "bad.pt")
    folder = tmp_path / "model"; folder.mkdir()
    (folder / "config.json").write_text("{}"); (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    one_line_error(tinygpt("generate", "--checkpoint", folder, "--prompt", "Hi"), "safetensors")

def test_resume_without_a_checkpoint(tmp_path):
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path / "empty", "--resume"), "checkpoint")

def test_corrupt_training_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    one_line_error(tinygpt("train", *SMALL, "--out", tmp_path, "--resume"), "checkpoint")

def test_unknown_preset(tmp_path):
    one_line_error(tinygpt("train", "--preset", "huge", "--data", "sample", "--out", tmp_path), "unknown preset", "tiny")

def test_empty_data(tmp_path):
    empty = tmp_path / "empty.txt"; empty.write_text("\n \n")
    one_line_error(tinygpt("train", "--data", empty, "--out", tmp_path / "run"), "empty")
    one_line_error(tinygpt("train", "--data", tmp_path / "missing.txt", "--out", tmp_path / "run"), "no such file")

@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "sample", "--out", "x", "--lr", "abc"], ["--lr", "not a number"]),
    (["train", "--data", "sample", "--out", "x", "--lr=-1e-3"], ["--lr", "greater than 0"]),
    (["train", "--data", "sample", "--out", "x", "--max-steps", "0"], ["--max-steps"]),
    (["train", "--data", "sample", "--out", "x", "--batch-size", "2.5"], ["--batch-size", "whole number"]),
    (["train", "--data", "sample", "--out", "x", "--max-steps", "10", "--stop-at", "11"], ["stop-at", "1..10"]),
    (["generate", "--prompt", "Hi", "--top-p", "1.5"], ["--top-p"]),
    (["generate", "--prompt", "Hi", "--temperature", "-1"], ["--temperature"]),
    (["generate", "--prompt", "Hi", "--max-new-tokens", "many"], ["--max-new-tokens"]),
])
def test_bad_numbers(tmp_path, argv, words):
    one_line_error(tinygpt(*argv, cwd=tmp_path), *words)

def test_resume_a_finished_run(runs):
    one_line_error(tinygpt("train", "--out", runs / "straight", "--resume", "--quiet"), "already at step 6")
