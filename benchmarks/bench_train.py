"""Training throughput of the 51M `tinygpt` preset on CPU: the Trainer's default path vs the fastest plain PyTorch loop.

    python benchmarks/bench_train.py --quick            # 3 timed rounds, modes plain + trainer, dropout 0 and 0.3 (~6 min on 2 cores)
    python benchmarks/bench_train.py --steps 5 --modes plain trainer trainer-compile trainer-nofused-compile
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_train.py --quick
                                                        # as on a CPU without native bf16 (AVX2 kernels only)

Every (mode, dropout) pair runs in its own subprocess (so its peak RSS is its own) on the same random token stream,
batch 4 x 512, the same dims and dropout for every mode of a row. The processes are started and warmed up one after
another, then they take turns: each round times one training step of every process, in a rotating order, so a noisy
neighbour slows all modes alike instead of one. The figure of a mode is its median step.
Modes: plain        the fastest plain loop, as nanoGPT's train.py on a CPU: model(x, y) with full logits, bf16 autocast
                    where the CPU has native bf16 (else fp32), torch.compile, AdamW (the baseline of the ratios)
       eager-fp32   model(x, y) -> backward -> AdamW, no autocast, no compile
       trainer      tinygpt.training.Trainer.fit() with its defaults on this machine (dtype="auto", chunked CE,
                    fused AdamW, freed memory kept for reuse); its per-step tokens/s
       trainer-compile, trainer-bf16, trainer-fp32, trainer-nofused-compile   the Trainer with those settings forced
Prints tokens/s and the ratio to the first mode at the same dropout, then the cost of the highest dropout for each
mode; --json writes the rows. Goals: trainer >= 1.15x plain; dropout 0.3 costs the trainer <= 25%."""
import argparse, json, os, resource, statistics, subprocess, sys, time

def matmul_gflops(dtype, n=1024, reps=5):
    "Peak-ish GEMM rate of this machine in `dtype` (a ceiling for training speed)."
    import torch
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps): a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9

def setup(mode, a):
    "The model, the token stream, and the settings of `mode` (compile, dtype, chunked CE) for this machine."
    import dataclasses, numpy as np, torch
    from tinygpt.model import GPT
    from tinygpt.moe import PRESETS           # all presets, dense and MoE
    if a.threads: torch.set_num_threads(a.threads)
    cfg = dataclasses.replace(PRESETS[a.preset], dropout=a._dropout)
    tokens = np.random.default_rng(0).integers(0, 50257, 2_000_000).astype(np.uint16)
    torch.manual_seed(0)
    return GPT(cfg), tokens

def plain_step(mode, model, tokens, a):
    "One step of the plain loop (`plain` or `eager-fp32`) as a function, and what it runs with."
    import contextlib, torch
    from tinygpt.training import bf16_supported, get_batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    model.train()
    fwd = torch.compile(model) if mode == "plain" else model
    bf16 = mode == "plain" and bf16_supported("cpu")
    def step():
        x, y = get_batch(tokens, a.batch_size, a.block_size, generator=g)
        with torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext(): _, loss = fwd(x, y)
        loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
        loss.item()
    return step, {"dtype": "bfloat16" if bf16 else "float32", "compile": mode == "plain", "fused_ce": False}

def trainer_kwargs(mode, a):
    "Trainer settings of a `trainer*` mode: its defaults, or the one setting the mode's name forces."
    kw = dict(batch_size=a.batch_size, block_size=a.block_size, progress=False, device="cpu")
    if "bf16" in mode: kw["dtype"] = "bf16"
    if "fp32" in mode: kw["dtype"] = "fp32"
    if "compile" in mode: kw["compile"] = True
    if "nofused" in mode: kw["fused_ce"] = False
    return kw

def child(mode, a):
    "Build and warm up `mode`, say ready, then run one timed step per 'step' line on stdin; then report and exit."
    import shutil, tempfile, torch
    n_warm, tok = (2 if "compile" in mode or mode == "plain" else 1), a.batch_size * a.block_size
    say = lambda line: print(line, flush=True)
    go = lambda: sys.stdin.readline().strip() == "step"
    model, tokens = setup(mode, a)
    if not mode.startswith("trainer"):
        step, info = plain_step(mode, model, tokens, a)
        for _ in range(n_warm): step()
        say("ready")
        while go():
            t = time.perf_counter(); step(); say(json.dumps({"t": time.perf_counter() - t}))
    else:                                     # the Trainer's own loop, fit(), paced by a callback
        from tinygpt.training import Trainer
        tmp = tempfile.mkdtemp(prefix="bench-train-")
        tr = Trainer(model, tokens, None, f"{tmp}/run", max_steps=n_warm + a.steps, **trainer_kwargs(mode, a))
        def pace(m):
            if m["step"] > n_warm: say(json.dumps({"t": tok / m["tokens_per_sec"]}))
            elif m["step"] == n_warm: say("ready")
            if m["step"] < tr.cfg.max_steps and not go(): raise KeyboardInterrupt("the benchmark stopped early")
        tr.callbacks.append(pace)
        try: tr.fit()
        finally: shutil.rmtree(tmp, ignore_errors=True)
        info = {"dtype": str(tr.dtype).replace("torch.", ""), "compile": tr.cfg.compile, "fused_ce": tr.loss_fn.fused_ce}
        sys.stdin.readline()                  # the parent's "done"
    say(json.dumps({"mode": mode, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "threads": torch.get_num_threads(), **info}))

def interleaved(jobs, argv, steps):
    "Start every (mode, dropout) process, then time `steps` rounds of one step each, in a rotating order."
    procs = {}
    for mode, p_drop in jobs:
        cmd = [sys.executable, __file__, *argv, "--_child", mode, "--_dropout", str(p_drop)]
        pr = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = pr.stdout.readline()
        if line.strip() != "ready":
            print(f"  {mode} at dropout {p_drop}: FAILED\n{pr.stderr.read()[-2000:]}"); pr.kill(); continue
        procs[mode, p_drop] = pr
        print(f"  started {mode} at dropout {p_drop}", flush=True)
    times = {j: [] for j in procs}
    order = list(procs)
    for r in range(steps):
        for j in order[r % len(order):] + order[:r % len(order)]:
            procs[j].stdin.write("step\n"); procs[j].stdin.flush()
            times[j].append(json.loads(procs[j].stdout.readline())["t"])
        print(f"  round {r + 1}/{steps}: " + ", ".join(f"{m}@{d} {times[m, d][-1]:.2f}s" for m, d in order), flush=True)
    rows = []
    for j, pr in procs.items():
        out, _ = pr.communicate("done\n")
        rows.append({**json.loads(out.strip().splitlines()[-1]), "dropout": j[1], "step_s": [round(t, 2) for t in times[j]],
                     "step_median_s": statistics.median(times[j])})
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 timed rounds")
    p.add_argument("--steps", type=int, default=6, help="timed rounds (one step of every mode each)")
    p.add_argument("--preset", default="tinygpt")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--block-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--modes", nargs="+", default=["plain", "trainer"])
    p.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.3])
    p.add_argument("--_dropout", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--json", help="write the result rows here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    if a.quick: a.steps = 3
    if a._child: return child(a._child, a)
    import torch
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, threads {a.threads or torch.get_num_threads()}, "
          f"os.cpu_count {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"GEMM 1024^3: fp32 {matmul_gflops(torch.float32):.0f} GFLOP/s, bf16 {matmul_gflops(torch.bfloat16):.0f} GFLOP/s")
    print(f"{a.preset}, batch {a.batch_size} x {a.block_size}, {a.steps} timed rounds, native bf16: "
          f"{bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}")
    rows = interleaved([(m, d) for d in a.dropout for m in a.modes], argv, a.steps)
    tok = a.batch_size * a.block_size
    speed = {(r["mode"], r["dropout"]): tok / r["step_median_s"] for r in rows}
    for r in rows: r["tokens_per_sec"] = speed[r["mode"], r["dropout"]]
    for p_drop in a.dropout:
        print(f"dropout {p_drop}:")
        for r in (r for r in rows if r["dropout"] == p_drop):
            base = speed.get((a.modes[0], p_drop), r["tokens_per_sec"])
            extra = {k: r[k] for k in ("dtype", "compile", "fused_ce")}
            print(f"  {r['mode']:24s} {r['tokens_per_sec']:8.0f} tok/s  x{r['tokens_per_sec'] / base:4.2f} of {a.modes[0]}  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB  steps {r['step_s']}  {extra}")
    if len(a.dropout) > 1:
        lo, hi = min(a.dropout), max(a.dropout)
        for mode in a.modes:
            if (mode, lo) in speed and (mode, hi) in speed:
                print(f"dropout {hi} costs {mode}: {1 - speed[mode, hi] / speed[mode, lo]:.0%} of its tokens/s at dropout {lo}")
    if a.json: open(a.json, "w").write(json.dumps(rows, indent=2))

if __name__ == "__main__": main()
