"""Tokens/s of `tinygpt.generate` with and without the KV cache, with and without `tinygpt.kernels.fast_decoding`.

One run on the CPU: batch 1, a 16-token prompt, 256 new tokens, greedy, the "tinygpt" preset with random
weights. Four paths: with and without the cache, each plain (`generate` as it is: `F.linear`) and inside
`fast_decoding(model)` (oneDNN for products of up to 32 rows, lesson 07). Their order rotates every repeat and the
median is reported, so a noisy neighbour on a shared machine hurts all of them about equally; the ratio is also
given as the median of the per-repeat ratios, each taken from runs minutes apart at most.

    python benchmarks/bench_generate.py            # about 4 min on 2 cores
    python benchmarks/bench_generate.py --quick    # a smoke run: 32 new tokens, 2 repeats
    python benchmarks/bench_generate.py --kernels  # F.linear vs oneDNN on TinyGPT's weights, 1 to 512 rows
Targets: the cached path (with fast_decoding) >= 6x the uncached one and >= 40 tokens/s on a 2-core machine.
"""
import argparse, contextlib, os, platform, statistics, sys, time, timeit
from datetime import datetime, timezone
import torch, torch.nn.functional as F
from tinygpt.model import GPT
from tinygpt.moe import PRESETS
from tinygpt.generate import generate
from tinygpt.kernels import fast_decoding, onednn_linear, onednn_ok

PATHS = {"KV cache": (True, True), "no cache": (False, True),           # (use_cache, inside fast_decoding)
         "KV cache, F.linear": (True, False), "no cache, F.linear": (False, False)}

def cpu_name():
    try: return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def machine_line():
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC | {cpu_name()} | {os.cpu_count()} CPUs, torch threads "
            f"{torch.get_num_threads()} | torch {torch.__version__} | load avg {os.getloadavg()[0]:.2f}")

def time_generate(model, prompt, n, use_cache, fast):
    "Seconds for one greedy generation of exactly `n` tokens (prefill included), and its output."
    t0 = time.perf_counter()
    with fast_decoding(model) if fast else contextlib.nullcontext():
        out = generate(model, prompt, n, temperature=0, use_cache=use_cache, stop_at_eot=False)
    return time.perf_counter() - t0, out

def best_ms(f): return 1e3 * min(timeit.repeat(f, number=1, repeat=5))    # the fastest of 5 calls, in ms

def kernels_table(cfg):
    "F.linear vs oneDNN, summed over one block's four weights x n_layer plus the LM head, for 1 to 512 rows."
    torch.manual_seed(0)
    C = cfg.n_embd
    shapes = [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)] * cfg.n_layer                 # distinct tensors: no cache reuse
    ws = [(torch.randn(o, i) * 0.02, torch.zeros(o)) for o, i in shapes]
    head = torch.randn(cfg.vocab_size, C) * 0.02
    print(f"Linear layers of preset {cfg.n_layer} blocks x (qkv, proj, fc, proj) + LM head, float32, best of 5")
    print(machine_line()); print()
    print(f"| {'rows':>5} | {'blocks F.linear ms':>18} | {'blocks oneDNN ms':>16} | {'head F.linear ms':>16} | {'head oneDNN ms':>14} |")
    print(f"|{'-' * 6}:|{'-' * 19}:|{'-' * 17}:|{'-' * 17}:|{'-' * 15}:|")
    with torch.inference_mode():
        for rows in (1, 2, 4, 8, 16, 32, 64, 144, 271, 512):
            x = {C: torch.randn(rows, C), 4 * C: torch.randn(rows, 4 * C)}
            bf = best_ms(lambda: [F.linear(x[w.shape[1]], w, b) for w, b in ws])
            bo = best_ms(lambda: [onednn_linear(x[w.shape[1]], w, b) for w, b in ws])
            hf, ho = best_ms(lambda: F.linear(x[C], head)), best_ms(lambda: onednn_linear(x[C], head))
            print(f"| {rows:>5} | {bf:>18.2f} | {bo:>16.2f} | {hf:>16.2f} | {ho:>14.2f} |")

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (32 new tokens, 2 repeats)")
    ap.add_argument("--kernels", action="store_true", help="only time F.linear vs oneDNN for 1 to 512 rows")
    ap.add_argument("--preset", default="tinygpt", choices=sorted(PRESETS))
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=None, help="default 256 (32 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="default 5 (2 with --quick)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    cfg = PRESETS[a.preset]
    if a.kernels: kernels_table(cfg); return 0
    n = a.new_tokens or (32 if a.quick else 256)
    repeats = a.repeats or (2 if a.quick else 5)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    prompt = torch.randint(0, 50257, (a.prompt_tokens,), generator=torch.Generator().manual_seed(0))
    names = list(PATHS)
    for name in names: time_generate(model, prompt, 4, *PATHS[name])                    # warm-up
    secs, outs = {k: [] for k in names}, {}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:                    # rotate the order
            dt, outs[name] = time_generate(model, prompt, n, *PATHS[name])
            secs[name].append(dt)
    tps = {k: [n / s for s in v] for k, v in secs.items()}
    med = {k: statistics.median(v) for k, v in tps.items()}
    ratio, plain_ratio = med["KV cache"] / med["no cache"], med["KV cache, F.linear"] / med["no cache, F.linear"]
    paired = statistics.median(c / u for c, u in zip(tps["KV cache"], tps["no cache"]))
    print(f"tinygpt.generate, preset {a.preset!r} ({model.n_params():,} params, random weights), batch 1, "
          f"{a.prompt_tokens}-token prompt, {n} new tokens, greedy, {repeats} rotated repeats; "
          f"oneDNN usable: {onednn_ok()}")
    print(machine_line()); print()
    w = max(map(len, names))
    print(f"| {'path':<{w}} | {'median tok/s':>12} | {'min':>7} | {'max':>7} |")
    print(f"|{'-' * (w + 2)}|{'-' * 13}:|{'-' * 8}:|{'-' * 8}:|")
    for k in names: print(f"| {k:<{w}} | {med[k]:>12.1f} | {min(tps[k]):>7.1f} | {max(tps[k]):>7.1f} |")
    print()
    print(f"ratio KV cache / no cache: {ratio:.1f}x (fast_decoding; median of per-repeat ratios {paired:.1f}x), "
          f"{plain_ratio:.1f}x (F.linear only)")
    same = all(torch.equal(outs[k], outs["KV cache"]) for k in names)
    ok = ratio >= 6 and med["KV cache"] >= 40
    print(f"all four outputs identical: {same}  (timings on a shared machine are noisy)")
    print(f"targets (cached >= 6x uncached, >= 40 tok/s): {'met' if ok else 'NOT met'}"
          + (" (a --quick run's short windows understate the ratio)" if a.quick else ""))
    if not same: return 1
    return 0 if ok or not a.check else 1

if __name__ == "__main__": sys.exit(main())
