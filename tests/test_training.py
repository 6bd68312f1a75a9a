"Lesson 08 (tinygpt.training): exact resume, atomic checkpoints, schedule, errors, and DDP with 2 gloo processes."
import json, math, os, signal, subprocess, sys
from pathlib import Path
from unittest import mock
import numpy as np, pytest, torch
from tinygpt.model import GPT, GPTConfig
from tinygpt.moe import MoEConfig
from tinygpt.training import (TrainConfig, Trainer, train, lr_at, decay_groups, save_checkpoint, read_checkpoint,
                              held_out_loss, LMLoss)
from conftest import FullDisk

CFG = GPTConfig(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
KW = dict(max_steps=20, batch_size=4, block_size=16, lr=3e-3, warmup_steps=3, dtype="fp32", seed=3, progress=False)

@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)

def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]

def test_lr_schedule():
    assert lr_at(0, 1.0, 4, 20) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 20) == pytest.approx(1.0)
    assert lr_at(20, 1.0, 4, 20, 0.1) == pytest.approx(0.1)
    lrs = [lr_at(s, 1.0, 4, 20, 0.1) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))          # monotone decay after warmup

def test_decay_groups_only_matrices():
    m = GPT(CFG)
    g = decay_groups(m, 0.1)
    assert g[0]["weight_decay"] == 0.1 and g[1]["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in g[0]["params"]) and all(p.dim() < 2 for p in g[1]["params"])
    assert sum(p.numel() for gr in g for p in gr["params"]) == m.n_params()   # tied weight counted once

@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_is_exact(tmp_path, tokens, grad_accum):
    straight = train(CFG, tokens, tokens, tmp_path / "a", grad_accum=grad_accum, eval_every=5, eval_batches=2, **KW)
    half = train(CFG, tokens, tokens, tmp_path / "b", grad_accum=grad_accum, stop_at=10, eval_every=5, eval_batches=2, **KW)
    assert half.step == 10 and read_checkpoint(tmp_path / "b")["step"] == 10
    resumed = train(CFG, tokens, tokens, tmp_path / "b", grad_accum=grad_accum, resume=True, eval_every=5, eval_batches=2, **KW)
    assert resumed.step == 20
    assert _same_weights(straight.model, resumed.model) == []
    assert resumed.loss == straight.loss and resumed.val_loss == straight.val_loss
    rows = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert all({"step", "loss", "lr", "tokens_per_sec"} <= r.keys() for r in rows)
    assert [r["step"] for r in rows if "val_loss" in r] == [5, 10, 15, 20]
    again = train(CFG, tokens, tokens, tmp_path / "b", grad_accum=grad_accum, resume=True, eval_every=5, eval_batches=2, **KW)
    assert again.step == 20 and again.loss == straight.loss and again.history == []     # nothing left to do
    a_rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in a_rows] == [r["loss"] for r in rows]

def test_different_seed_differs(tmp_path, tokens):
    "Guard against a vacuous exactness test: a different seed must give different weights."
    a = train(CFG, tokens, None, tmp_path / "a", **{**KW, "max_steps": 3})
    b = train(CFG, tokens, None, tmp_path / "b", **{**KW, "max_steps": 3, "seed": 4})
    assert _same_weights(a.model, b.model) != []

def test_checkpoint_contents_load_weights_only(tmp_path, tokens):
    r = train(CFG, tokens, None, tmp_path, **{**KW, "max_steps": 2})
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {"model", "config", "optimizer", "step", "schedule", "rng", "data"} <= ck.keys()
    assert ck["step"] == 2 and GPTConfig(**ck["config"]) == CFG
    assert "tok_emb.weight" in ck["model"] and "blocks.0.attn.qkv.weight" in ck["model"]
    assert isinstance(ck["rng"][0]["batch"], torch.Tensor) and isinstance(ck["rng"][0]["torch"], torch.Tensor)
    assert json.loads((tmp_path / "config.json").read_text())["model"] == CFG.to_dict()

def test_crash_mid_write_keeps_last_good_checkpoint(tmp_path, tokens):
    train(CFG, tokens, None, tmp_path, **{**KW, "max_steps": 4, "stop_at": 2})
    good = read_checkpoint(tmp_path)
    real_save = torch.save
    def dying_save(obj, f, *a, **k):
        real_save({"partial": torch.zeros(10)}, f)            # some bytes hit the disk ...
        raise KeyboardInterrupt("killed mid-write")          # ... then Ctrl-C
    with mock.patch.object(torch, "save", dying_save), pytest.raises(KeyboardInterrupt):
        train(CFG, tokens, None, tmp_path, resume=True, **{**KW, "max_steps": 4})
    ck = read_checkpoint(tmp_path)
    assert ck["step"] == 2 and _same_weights_sd(ck["model"], good["model"])
    assert sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name) == ["checkpoint.pt"]   # no temp left

def _same_weights_sd(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def test_save_checkpoint_is_atomic_with_os_error(tmp_path):
    p = save_checkpoint({"model": {}, "config": {}, "step": 1}, tmp_path / "checkpoint.pt")
    with mock.patch.object(torch, "save", side_effect=OSError("disk full")), pytest.raises(OSError):
        save_checkpoint({"model": {}, "config": {}, "step": 2}, p)
    assert read_checkpoint(tmp_path)["step"] == 1

def test_errors(tmp_path, tokens):
    with pytest.raises(ValueError, match="unknown preset"): train("nope", tokens, out_dir=tmp_path, **KW)
    with pytest.raises(ValueError, match="train data has 0 tokens"): train(CFG, np.array([], dtype=np.uint16), out_dir=tmp_path, **KW)
    with pytest.raises(FileNotFoundError, match="no checkpoint"): train(CFG, tokens, out_dir=tmp_path / "none", resume=True, **KW)
    (tmp_path / "bad").mkdir(); (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"): train(CFG, tokens, out_dir=tmp_path / "bad", resume=True, **KW)
    with pytest.raises(ValueError, match="stop_at"): TrainConfig(max_steps=5, stop_at=6)
    with pytest.raises(ValueError, match="dtype"): train(CFG, tokens, out_dir=tmp_path, **{**KW, "dtype": "fp8"})
    with pytest.raises(ValueError, match="block_size"): train(CFG, tokens, out_dir=tmp_path, **{**KW, "block_size": 64})

def test_callbacks_and_val_loss(tmp_path, tokens):
    seen, ends = [], []
    class CB:
        def on_step(self, m): seen.append(m)
        def on_end(self, r): ends.append(r)
    fn_seen = []
    r = train(CFG, tokens, tokens, tmp_path, callbacks=[CB(), fn_seen.append], eval_batches=2, **{**KW, "max_steps": 3})
    assert [m["step"] for m in seen] == [1, 2, 3] == [m["step"] for m in fn_seen]
    assert "val_loss" in seen[-1] and seen[-1]["max_steps"] == 3 and ends[0] is r
    assert seen[-1]["val_windows"] == 2 * KW["batch_size"]                     # labelled: the first N windows
    with torch.no_grad(): assert r.val_loss == pytest.approx(held_out_loss(r.model, tokens, 16, 4, max_windows=8), rel=1e-5)

def test_held_out_loss_counts_every_window_once(tokens):
    m = GPT(CFG).eval()
    T, n = 16, (len(tokens) - 1) // 16
    ids = torch.as_tensor(tokens.astype(np.int64))
    with torch.no_grad():
        per = [torch.nn.functional.cross_entropy(m(ids[i * T:(i + 1) * T][None])[0], ids[i * T + 1:(i + 1) * T + 1]).item() for i in range(n)]
    assert held_out_loss(m, tokens, T, batch_size=7) == pytest.approx(sum(per) / n, rel=1e-5)       # all windows
    assert held_out_loss(m, tokens, T, max_windows=5) == pytest.approx(sum(per[:5]) / 5, rel=1e-5)  # the first 5
    assert held_out_loss(m, tokens, T, max_windows=10**6) == held_out_loss(m, tokens, T)            # capped at n
    assert held_out_loss(m, list(tokens[:40]), T) == pytest.approx(sum(per[:2]) / 2, rel=1e-5)      # lists too
    m.train(); held_out_loss(m, tokens, T, max_windows=2); assert m.training                        # mode restored
    for bad in (dict(max_windows=0), dict(batch_size=0), dict(block_size=2.5)):
        with pytest.raises(ValueError, match="positive integer"): held_out_loss(m, tokens, **{"block_size": T, **bad})
    with pytest.raises(ValueError, match="more than"): held_out_loss(m, tokens[:16], T)

def test_loss_wrapper_matches_model(tokens):
    m = GPT(CFG).eval()
    x = torch.as_tensor(tokens[:32].astype(np.int64)).view(2, 16); y = torch.as_tensor(tokens[1:33].astype(np.int64)).view(2, 16)
    ref = m(x, y)[1]
    torch.testing.assert_close(LMLoss(m, fused_ce=False)(x, y), ref)
    torch.testing.assert_close(LMLoss(m, fused_ce=True)(x, y), ref, atol=1e-4, rtol=1e-4)

def test_moe_aux_loss_is_in_the_training_loss(tmp_path, tokens):
    m = GPT(CFG).eval()
    x = torch.as_tensor(tokens[:32].astype(np.int64)).view(2, 16); y = torch.as_tensor(tokens[1:33].astype(np.int64)).view(2, 16)
    base = LMLoss(m, fused_ce=False)(x, y)
    with mock.patch.object(m, "aux_loss", lambda: torch.tensor(1.5)):
        torch.testing.assert_close(LMLoss(m, fused_ce=False)(x, y), base + 1.5)
        torch.testing.assert_close(LMLoss(m, fused_ce=True)(x, y), base + 1.5, atol=1e-4, rtol=1e-4)
    moe = MoEConfig(vocab_size=256, block_size=32, n_layer=1, n_head=2, n_embd=32, n_experts=2, top_k_experts=1, expert_hidden=32)
    r = train(moe, tokens, None, tmp_path, **{**KW, "max_steps": 2})
    assert r.step == 2 and math.isfinite(r.loss)

DDP_SCRIPT = '''
import sys, numpy as np, torch, torch.distributed as dist
from tinygpt.model import GPTConfig
from tinygpt.training import train
out, extra = sys.argv[1], dict(a.split("=") for a in sys.argv[2:])
cfg = GPTConfig(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
tokens = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)
kw = dict(max_steps=4, batch_size=4, block_size=16, grad_accum=2, lr=3e-3, dtype="fp32", seed=3, progress=False, device="cpu")
if "stop_at" in extra: kw["stop_at"] = int(extra["stop_at"])
r = train(cfg, tokens, tokens, out, resume=extra.get("resume") == "1", eval_batches=2, **kw)
flat = torch.cat([p.detach().flatten() for p in r.model.parameters()])
rank = int(__import__("os").environ["RANK"])
torch.save(flat, f"{out}/weights-rank{rank}.pt")
'''

def _torchrun(script, out, *args, timeout=300):
    "Run `script` under torchrun with 2 CPU processes; on a timeout kill the whole process group (no orphans)."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out), *args]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try: log, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.communicate()
        pytest.fail(f"torchrun timed out after {timeout} s")
    assert p.returncode == 0, log[-4000:]

def test_ddp_two_processes(tmp_path):
    "torchrun with 2 gloo CPU processes: ranks stay in sync, each draws its own batches, rank 0 alone logs and saves."
    script = tmp_path / "ddp_train.py"; script.write_text(DDP_SCRIPT)
    _torchrun(script, tmp_path / "a")
    w0, w1 = (torch.load(tmp_path / "a" / f"weights-rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(w0, w1)                                  # DDP kept both copies identical
    ck = read_checkpoint(tmp_path / "a")
    assert ck["step"] == 4 and len(ck["rng"]) == 2 and ck["data"]["world_size"] == 2
    assert not torch.equal(ck["rng"][0]["batch"], ck["rng"][1]["batch"])   # each rank draws its own batches
    rows = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in rows] == [1, 2, 3, 4]          # rank 0 alone logs
    assert "val_loss" in json.loads(rows[-1])

@pytest.mark.slow
def test_ddp_resume_is_exact(tmp_path):
    "Under DDP too, 4 steps straight == 2 steps + resume + 2 (every rank's RNG states are in the checkpoint)."
    script = tmp_path / "ddp_train.py"; script.write_text(DDP_SCRIPT)
    _torchrun(script, tmp_path / "a")
    _torchrun(script, tmp_path / "b", "stop_at=2")
    assert read_checkpoint(tmp_path / "b")["step"] == 2
    _torchrun(script, tmp_path / "b", "resume=1")
    w = [torch.load(tmp_path / d / "weights-rank0.pt", weights_only=True) for d in ("a", "b")]
    assert torch.equal(w[0], w[1])

def test_bf16_autocast_trains(tmp_path, tokens):
    r = train(CFG, tokens, tokens, tmp_path, eval_batches=1, **{**KW, "max_steps": 2, "dtype": "bf16"})
    assert r.step == 2 and math.isfinite(r.loss) and math.isfinite(r.val_loss)
    assert next(r.model.parameters()).dtype == torch.float32          # autocast: weights stay fp32

@pytest.mark.slow
def test_compiled_training_matches_eager_closely(tmp_path, tokens):
    "torch.compile computes the same training steps (without dropout: compiled dropout draws different masks)."
    cfg = GPTConfig(**{**CFG.to_dict(), "dropout": 0.0})
    a = train(cfg, tokens, None, tmp_path / "eager", **{**KW, "max_steps": 3})
    b = train(cfg, tokens, None, tmp_path / "compiled", compile=True, **{**KW, "max_steps": 3})
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(va, vb, atol=1e-4, rtol=1e-3, msg=k)

# --- reliability: no lost runs, no silent wrong models (each case is one clear error or the exact result) ---------
from tinygpt.training import RunLock, RunFolderBusy, repair_metrics, load_weights_only

def _steps(run): return [json.loads(l)["step"] for l in (Path(run) / "metrics.jsonl").read_text().splitlines()]

def test_existing_run_is_not_replaced_without_overwrite(tmp_path, tokens):
    kw = {**KW, "max_steps": 4}
    train(CFG, tokens, None, tmp_path, **kw)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match=r"already holds a training run.*resume=True \(--resume\).*overwrite=True \(--overwrite\)") as e:
        train(CFG, tokens, None, tmp_path, **kw)
    assert "\n" not in str(e.value)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before and _steps(tmp_path) == [1, 2, 3, 4]   # untouched
    with pytest.raises(ValueError, match="contradict"): train(CFG, tokens, None, tmp_path, resume=True, overwrite=True, **kw)
    r = train(CFG, tokens, None, tmp_path, overwrite=True, **{**kw, "max_steps": 2})
    assert r.step == 2 and _steps(tmp_path) == [1, 2] and read_checkpoint(tmp_path)["step"] == 2
    (tmp_path / "other").mkdir(); (tmp_path / "other" / "notes.txt").write_text("x")     # a folder without a run: fine
    assert train(CFG, tokens, None, tmp_path / "other", **kw).step == 4

LOCK_HOLDER = "import sys, time; from tinygpt.training import RunLock; RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)"

def test_two_runs_into_one_folder_cannot_both_run(tmp_path, tokens):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=r"run is in use by another training run \(pid \d+\)"):
            train(CFG, tokens, None, tmp_path / "run", **{**KW, "max_steps": 2})
        assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()
        assert isinstance(RunFolderBusy("x"), ValueError)                                  # a one-line user error
    finally: holder.kill(); holder.wait()
    assert (tmp_path / "run" / "run.lock").exists()                                        # a stale lock file stays ...
    assert train(CFG, tokens, None, tmp_path / "run", **{**KW, "max_steps": 2}).step == 2  # ... and is seen to be stale
    with RunLock(tmp_path / "run"), RunLock(tmp_path / "run"): pass                       # re-entrant in one process

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_exact(tmp_path, tokens, sig):
    straight = train(CFG, tokens, tokens, tmp_path / "a", eval_every=4, eval_batches=1, **KW)
    def send(m):
        if m["step"] == 7: os.kill(os.getpid(), sig)
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt, match=f"stopped by {sig.name} at step 8"):
        train(CFG, tokens, tokens, tmp_path / "b", eval_every=4, eval_batches=1, callbacks=[send], **KW)
    assert read_checkpoint(tmp_path / "b")["step"] == 8 and _steps(tmp_path / "b") == list(range(1, 9))
    assert signal.getsignal(sig) is before                                                 # handlers put back
    resumed = train(CFG, tokens, tokens, tmp_path / "b", resume=True, eval_every=4, eval_batches=1, **KW)
    assert _same_weights(straight.model, resumed.model) == []
    assert _steps(tmp_path / "b") == list(range(1, 21))                                    # no step twice
    a_rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    b_rows = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["loss"], r.get("val_loss")) for r in a_rows] == [(r["loss"], r.get("val_loss")) for r in b_rows]

def test_partial_metrics_line_and_temp_files_are_repaired_on_resume(tmp_path, tokens):
    train(CFG, tokens, None, tmp_path, stop_at=5, **KW)
    with open(tmp_path / "metrics.jsonl", "a") as f:                    # killed after step 6's line, inside step 7's
        f.write(json.dumps({"step": 6, "loss": 1.0, "lr": 0.1}) + "\n" + '{"step": 7, "loss": 0.9')
    junk = [tmp_path / ".checkpoint.pt.4242.tmp", tmp_path / ".checkpoint.pt.x1y2z3.tmp", tmp_path / ".metrics.jsonl.abc.tmp"]
    for p in junk: p.write_bytes(b"\0" * 1000)
    (tmp_path / "keep.tmp").write_text("not ours")
    r = train(CFG, tokens, None, tmp_path, resume=True, **KW)
    assert r.step == 20 and _steps(tmp_path) == list(range(1, 21))     # every line parses; 6 and 7 came from the resume
    assert not any(p.exists() for p in junk) and (tmp_path / "keep.tmp").exists()

def test_repair_metrics(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n')
    assert repair_metrics(p, 2) == 0 and p.read_text() == '{"step": 1}\n{"step": 2}\n'
    p.write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert repair_metrics(p, 5) == 1 and p.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert repair_metrics(tmp_path / "none.jsonl", 3) == 0

@pytest.mark.parametrize("bad,match", [
    (dict(grad_clip=float("nan")), "grad_clip must be a finite number"), (dict(grad_clip=-1.0), "grad_clip must be >= 0"),
    (dict(max_steps=2.5), "max_steps must be an integer"), (dict(max_steps=True), "max_steps must be an integer"),
    (dict(lr=float("inf")), "lr must be a finite number"), (dict(lr=0), "lr must be > 0"), (dict(lr="1e-3"), "lr must be a finite"),
    (dict(batch_size=0), "batch_size must be >= 1"), (dict(grad_accum=1.5), "grad_accum must be an integer"),
    (dict(warmup_steps=-1), "warmup_steps must be >= 0"), (dict(min_lr=float("nan")), "min_lr must be a finite"),
    (dict(beta2=1.0), "beta2 must be < 1"), (dict(weight_decay=float("inf")), "weight_decay must be a finite"),
    (dict(eval_batches=0), "eval_batches must be >= 1"), (dict(seed=2**70), "seed must be <="), (dict(seed=-1), "seed must be >= 0"),
    (dict(block_size=0), "block_size must be >= 1"), (dict(stop_at=0), "stop_at must be >= 1"),
    (dict(progress="yes"), "progress must be True or False"), (dict(dtype="fp16"), "dtype must be"), (dict(device=0), "device must be")])
def test_bad_train_config_refused(tmp_path, tokens, bad, match):
    with pytest.raises(ValueError, match=match): TrainConfig(**bad)
    with pytest.raises(ValueError, match=match): train(CFG, tokens, None, tmp_path, **{**KW, **bad})
    assert not (tmp_path / "checkpoint.pt").exists()
    assert TrainConfig(max_steps=np.int64(3)).max_steps == 3                                # numpy integers are integers

def test_divergence_never_saves_nan_weights(tmp_path, tokens):
    def poison(m):                                                     # weights go bad after step 3's checkpoint
        if m["step"] == 3:
            with torch.no_grad(): trainer.model.blocks[0].mlp.fc.weight[0, 0] = float("inf")
    class Grab:
        def on_start(self, t): global trainer; trainer = t
    with pytest.raises(ValueError, match="training diverged at step 4") as e:
        train(CFG, tokens, None, tmp_path, callbacks=[Grab(), poison], ckpt_every=1, **KW)
    assert "\n" not in str(e.value) and "lr=" in str(e.value)
    ck = read_checkpoint(tmp_path)
    assert ck["step"] == 3 and all(torch.isfinite(v).all() for v in ck["model"].values())
    assert _steps(tmp_path) == [1, 2, 3]
    with torch.no_grad(): trainer.model.blocks[0].mlp.fc.weight[0, 0] = float("nan")   # save() refuses, whatever called it
    with pytest.raises(ValueError, match="training diverged at step 3: the weights hold NaN"): trainer.save()
    assert read_checkpoint(tmp_path)["step"] == 3


def test_full_disk_during_checkpoint(tmp_path, tokens):
    import tinygpt.data
    train(CFG, tokens, None, tmp_path, stop_at=2, **KW)
    good = read_checkpoint(tmp_path)
    real = os.fdopen
    with mock.patch.object(tinygpt.data.os, "fdopen", lambda *a, **k: FullDisk(real(*a, **k), limit=2000)):
        with pytest.raises(OSError, match="no space left on the disk of .*previous checkpoint is kept") as e:
            train(CFG, tokens, None, tmp_path, resume=True, **{**KW, "stop_at": 4})
    assert e.value.errno == 28 and "\n" not in str(e.value) and "inline_container" not in str(e.value)
    ck = read_checkpoint(tmp_path)
    assert ck["step"] == 2 and _same_weights_sd(ck["model"], good["model"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl", "run.lock"]
    assert train(CFG, tokens, None, tmp_path, resume=True, **KW).step == 20           # space again: it resumes

def test_refused_pickle_says_so(tmp_path):
    class Evil:
        def __reduce__(self): return (os.system, ("echo owned",))
    torch.save({"model": Evil(), "config": {}, "step": 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"objects other than tensors \(.*system\).*refused for safety") as e: read_checkpoint(tmp_path)
    assert "truncated" not in str(e.value)
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="truncated or corrupt"): load_weights_only(tmp_path / "checkpoint.pt")
