"""Training throughput of the 51M `tinygpt` preset on CPU: the Trainer's default path vs the fastest plain PyTorch loop.

    python benchmarks/bench_train.py --quick            # 2 timed steps per mode, dropout 0 and 0.3 (10-15 minutes on 2 cores)
    python benchmarks/bench_train.py --steps 5 --dropout 0 --modes plain trainer trainer-compile trainer-nofused-compile

Each mode runs in its own subprocess (so its peak RSS is its own) on the same random token stream, batch 4 x 512, at
each `--dropout` (the same dims and dropout for every mode of a row).
Modes: plain        the fastest plain loop, as nanoGPT's train.py on a CPU: model(x, y) with full logits, bf16 autocast
                    where the CPU has native bf16 (else fp32), torch.compile, AdamW (the baseline of the ratios)
       eager-fp32   model(x, y) -> backward -> AdamW, no autocast, no compile
       trainer      tinygpt.training.Trainer with its defaults on this machine (dtype="auto", chunked CE, fused AdamW)
       trainer-compile, trainer-bf16, trainer-fp32, trainer-nofused-compile   the Trainer with those settings forced
Prints tokens/s (median of the timed steps) and the ratio to `plain` at the same dropout, then the cost of dropout
0.3 for each mode; --json writes the rows. Goals: trainer >= 1.15x plain; dropout 0.3 costs the trainer <= 25%."""
import argparse, json, os, resource, statistics, subprocess, sys, time

def matmul_gflops(dtype, n=1024, reps=5):
    "Peak-ish GEMM rate of this machine in `dtype` (a ceiling for training speed)."
    import torch
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps): a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9

def run_mode(mode, a):
    import numpy as np, torch
    from tinygpt.model import GPT
    from tinygpt.moe import PRESETS           # all presets, dense and MoE
    if a.threads: torch.set_num_threads(a.threads)
    import dataclasses
    from tinygpt.training import bf16_supported
    cfg = dataclasses.replace(PRESETS[a.preset], dropout=a._dropout)
    tokens = np.random.default_rng(0).integers(0, 50257, 2_000_000).astype(np.uint16)
    torch.manual_seed(0)
    model = GPT(cfg)
    n_warm, times, info = (2 if "compile" in mode else 1), [], {}
    if mode in ("eager-fp32", "plain"):
        import contextlib
        from tinygpt.training import get_batch
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
        g = torch.Generator().manual_seed(0)
        model.train()
        step = torch.compile(model) if mode == "plain" else model
        bf16 = mode == "plain" and bf16_supported("cpu")
        info = {"dtype": "bfloat16" if bf16 else "float32", "compile": mode == "plain", "fused_ce": False}
        for i in range(n_warm + a.steps):
            t = time.perf_counter()
            x, y = get_batch(tokens, a.batch_size, a.block_size, generator=g)
            with torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext(): _, loss = step(x, y)
            loss.backward()
            opt.step(); opt.zero_grad(set_to_none=True)
            loss.item()
            if i >= n_warm: times.append(time.perf_counter() - t)
    else:
        from tinygpt.training import Trainer
        kw = dict(max_steps=1000, batch_size=a.batch_size, block_size=a.block_size, progress=False, device="cpu")
        if "bf16" in mode: kw["dtype"] = "bf16"
        if "fp32" in mode: kw["dtype"] = "fp32"
        if "compile" in mode: kw["compile"] = True
        if "nofused" in mode: kw["fused_ce"] = False
        import tempfile
        tr = Trainer(model, tokens, None, tempfile.mkdtemp(prefix="bench-train-"), **kw)   # train_step only: no files written
        info = {"dtype": str(tr.dtype).replace("torch.", ""), "compile": tr.cfg.compile, "fused_ce": tr.loss_fn.fused_ce}
        for i in range(n_warm + a.steps):
            t = time.perf_counter(); tr.train_step()
            if i >= n_warm: times.append(time.perf_counter() - t)
    tok = a.batch_size * a.block_size
    return {"mode": mode, "tokens_per_sec": tok / statistics.median(times), "step_s": [round(t, 2) for t in times],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads(), **info}

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 timed steps per mode")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    p.add_argument("--preset", default="tinygpt")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--block-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--modes", nargs="+", default=["plain", "trainer"])
    p.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.3])
    p.add_argument("--_dropout", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--json", help="write the result rows here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick: a.steps = 2
    if a._child:
        print(json.dumps(run_mode(a._child, a))); return
    import torch
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, threads {a.threads or torch.get_num_threads()}, "
          f"os.cpu_count {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"GEMM 1024^3: fp32 {matmul_gflops(torch.float32):.0f} GFLOP/s, bf16 {matmul_gflops(torch.bfloat16):.0f} GFLOP/s")
    print(f"{a.preset}, batch {a.batch_size} x {a.block_size}, {a.steps} timed steps per mode, native bf16: "
          f"{bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}")
    rows, speed = [], {}
    for p_drop in a.dropout:
        print(f"dropout {p_drop}:")
        for mode in a.modes:
            args = [sys.executable, __file__, "--_child", mode, "--_dropout", str(p_drop)] + [x for x in (argv if argv is not None else sys.argv[1:])]
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode: print(f"  {mode}: FAILED\n{r.stderr[-2000:]}"); continue
            row = {**json.loads(r.stdout.strip().splitlines()[-1]), "dropout": p_drop}
            rows.append(row); speed[mode, p_drop] = row["tokens_per_sec"]
            base = speed.get((a.modes[0], p_drop), row["tokens_per_sec"])
            extra = {k: row[k] for k in ("dtype", "compile", "fused_ce") if k in row}
            print(f"  {mode:24s} {row['tokens_per_sec']:8.0f} tok/s  x{row['tokens_per_sec'] / base:4.2f} of {a.modes[0]}  "
                  f"peak RSS {row['peak_rss_mb']:6.0f} MB  steps {row['step_s']}  {extra}", flush=True)
    if len(a.dropout) > 1:
        lo, hi = min(a.dropout), max(a.dropout)
        for mode in a.modes:
            if (mode, lo) in speed and (mode, hi) in speed:
                print(f"dropout {hi} costs {mode}: {1 - speed[mode, hi] / speed[mode, lo]:.0%} of its tokens/s at dropout {lo}")
    if a.json: open(a.json, "w").write(json.dumps(rows, indent=2))

if __name__ == "__main__": main()
