"""Fault injection: kill -9 a training process at random moments (inside checkpoint writes too), resume it each time,
and compare with a run that was never interrupted: identical weights, no orphaned temp files, readable metrics."""
import json, os, random, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]

WORKER = '''
import sys, numpy as np, torch
from pathlib import Path
from tinygpt.model import GPTConfig
from tinygpt.training import train
torch.set_num_threads(1)
out, steps = Path(sys.argv[1]), int(sys.argv[2])
cfg = GPTConfig(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
tokens = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)
resume = (out / "checkpoint.pt").exists()
train(cfg, tokens, tokens, out, resume=resume, overwrite=not resume, max_steps=steps, batch_size=4, block_size=16,
      lr=3e-3, warmup_steps=3, dtype="fp32", device="cpu", seed=3, progress=False, ckpt_every=1, eval_every=5, eval_batches=1)
print("done", flush=True)
'''

def _start(script, out, steps):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(out), str(steps)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)

def _lines(out):
    try: return (out / "metrics.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError: return 0

def _kill_somewhere(p, out, rng, inside_write):
    "Wait until `p` trains a new step, then SIGKILL it: while a checkpoint temp file exists, or after a random delay."
    start, t0, saw_tmp = _lines(out), time.time(), False
    while _lines(out) == start:                                          # still importing torch / building the model
        if p.poll() is not None: return False, False
        if time.time() - t0 > 120: os.killpg(p.pid, signal.SIGKILL); pytest.fail("the worker made no progress for 2 minutes")
        time.sleep(0.002)
    if inside_write:
        t1 = time.time()
        while not (saw_tmp := bool(list(out.glob(".checkpoint.pt.*.tmp")))) and time.time() - t1 < 5:
            if p.poll() is not None: return False, False
    else: time.sleep(rng.uniform(0, 0.1))
    if p.poll() is not None: return False, False
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    return True, saw_tmp

def _run_with_kills(tmp_path, n_kills, steps, seed):
    script = tmp_path / "worker.py"; script.write_text(WORKER)
    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    p = _start(script, ref, steps); log = p.communicate(timeout=300)
    assert p.returncode == 0, log[1].decode()[-3000:]
    rng, kills, inside = random.Random(seed), 0, 0
    while True:
        p = _start(script, out, steps)
        if kills < n_kills:
            killed, saw_tmp = _kill_somewhere(p, out, rng, inside_write=kills % 2 == 0)   # every other kill: in a write
            if killed: kills += 1; inside += saw_tmp; continue
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-3000:]
        return ref, out, kills, inside

def _check_same(ref, out, steps):
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (ref, out))
    assert a["step"] == b["step"] == steps
    assert [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])] == []          # identical weights
    assert all(torch.equal(x, y) for x, y in zip(a["optimizer"]["state"][0].values(), b["optimizer"]["state"][0].values()))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl", "run.lock"]  # no temp files
    rows_a = [json.loads(l) for l in (ref / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]                 # every line parses
    assert [r["step"] for r in rows_b] == list(range(1, steps + 1))                                   # each step once
    assert [(r["loss"], r.get("val_loss")) for r in rows_a] == [(r["loss"], r.get("val_loss")) for r in rows_b]

def test_kill_9_three_times_then_resume_is_exact(tmp_path):
    "The quick variant CI runs: 3 kills, one of them inside a checkpoint write."
    ref, out, kills, inside = _run_with_kills(tmp_path, 3, steps=40, seed=0)
    assert kills == 3 and inside >= 1
    _check_same(ref, out, 40)

@pytest.mark.slow
def test_kill_9_twenty_times_then_resume_is_exact(tmp_path):
    "20 kills at random moments, half of them while a checkpoint is being written."
    ref, out, kills, inside = _run_with_kills(tmp_path, 20, steps=300, seed=1)
    assert kills == 20 and inside >= 5
    _check_same(ref, out, 300)
