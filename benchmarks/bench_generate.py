"""Tokens/s of `tinygpt.generate` with and without the KV cache (lesson 05, "Performance").

One run on the CPU: batch 1, a 16-token prompt, 256 new tokens, greedy, the "tinygpt" preset with random
weights. Cached and uncached runs are interleaved (their order alternates every repeat) and the median is
reported, so a noisy neighbour on a shared machine hurts both about equally.

    python benchmarks/bench_generate.py            # the figures recorded in nbs/05_generate.ipynb
    python benchmarks/bench_generate.py --quick    # a smoke run: 32 new tokens, 2 repeats
Targets (issue 3): cached >= 6x uncached and >= 40 tokens/s on a 2-core machine.
"""
import argparse, os, platform, statistics, sys, time
from datetime import datetime, timezone
import torch
from tinygpt.model import GPT, PRESETS
from tinygpt.generate import generate

def cpu_name():
    try: return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def time_generate(model, prompt, n, use_cache):
    "Seconds for one greedy generation of exactly `n` tokens (prefill included), and its output."
    t0 = time.perf_counter()
    out = generate(model, prompt, n, temperature=0, use_cache=use_cache, stop_at_eot=False)
    return time.perf_counter() - t0, out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (32 new tokens, 2 repeats)")
    ap.add_argument("--preset", default="tinygpt", choices=sorted(PRESETS))
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=None, help="default 256 (32 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (2 with --quick)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args(argv)
    n = a.new_tokens or (32 if a.quick else 256)
    repeats = a.repeats or (2 if a.quick else 3)
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = PRESETS[a.preset]
    model = GPT(cfg).eval()
    prompt = torch.randint(0, 50257, (a.prompt_tokens,), generator=torch.Generator().manual_seed(0))
    for use_cache in (True, False): time_generate(model, prompt, 4, use_cache)   # warm-up
    secs, outs = {True: [], False: []}, {}
    for r in range(repeats):
        for use_cache in ((True, False) if r % 2 == 0 else (False, True)):
            dt, outs[use_cache] = time_generate(model, prompt, n, use_cache)
            secs[use_cache].append(dt)
    tps = {k: [n / s for s in v] for k, v in secs.items()}
    med = {k: statistics.median(v) for k, v in tps.items()}
    ratio = med[True] / med[False]
    print(f"tinygpt.generate, preset {a.preset!r} ({model.n_params():,} params, random weights), batch 1, "
          f"{a.prompt_tokens}-token prompt, {n} new tokens, greedy, {repeats} interleaved repeats")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC | {cpu_name()} | {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()} | torch {torch.__version__} | load avg {os.getloadavg()[0]:.2f}")
    print()
    print(f"| {'path':<10} | {'median tok/s':>12} | {'min':>7} | {'max':>7} |")
    print(f"|{'-' * 12}|{'-' * 13}:|{'-' * 8}:|{'-' * 8}:|")
    for k, name in ((True, "KV cache"), (False, "no cache")):
        print(f"| {name:<10} | {med[k]:>12.1f} | {min(tps[k]):>7.1f} | {max(tps[k]):>7.1f} |")
    print(f"| {'ratio':<10} | {ratio:>11.1f}x | {'':>7} | {'':>7} |")
    print()
    same = torch.equal(outs[True], outs[False])
    ok = ratio >= 6 and med[True] >= 40
    print(f"cached and uncached outputs identical: {same}")
    print(f"targets (cached >= 6x uncached, >= 40 tok/s): {'met' if ok else 'NOT met'}"
          + (" (a --quick run's short windows understate the ratio)" if a.quick else ""))
    if not same: return 1
    return 0 if ok or not a.check else 1

if __name__ == "__main__": sys.exit(main())
