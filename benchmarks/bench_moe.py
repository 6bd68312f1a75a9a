"""MoE layer forward + backward on CPU: the exported sort-by-expert dispatch (`tinygpt.moe.experts_dispatch`)
against the boolean-mask loop (`tinygpt.moe.experts_loop`), side by side in one process, same weights, same input
and same routing, runs alternating so both see the same machine load. Reports the median and the fastest run.

    python benchmarks/bench_moe.py            # 4,096 tokens, width 512, 4 experts (hidden 1,024), top-2
    python benchmarks/bench_moe.py --quick    # 512 tokens, 2 reps: a fast smoke run
"""
import argparse, statistics, time
import torch
from tinygpt.moe import Expert, experts_dispatch, experts_loop, route

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=4096); p.add_argument("--width", type=int, default=512)
    p.add_argument("--experts", type=int, default=4); p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--hidden", type=int, default=1024); p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="512 tokens, 2 reps")
    a = p.parse_args(argv)
    if a.quick: a.tokens, a.reps = 512, 2
    torch.manual_seed(0)
    experts = torch.nn.ModuleList(Expert(a.width, a.hidden) for _ in range(a.experts))
    router = torch.nn.Linear(a.width, a.experts, bias=False)
    x = torch.randn(a.tokens, a.width, requires_grad=True)
    fns = {"dispatch": experts_dispatch, "mask loop": experts_loop}
    def step(fn):
        x.grad = None; experts.zero_grad(); router.zero_grad()
        t0 = time.perf_counter()
        w, idx = route(router(x), a.top_k)
        out = fn(x, idx, w, experts); out.square().mean().backward()
        return time.perf_counter() - t0, out.detach()
    outs = {k: step(f)[1] for k, f in fns.items()}                       # warm-up, and check they agree
    torch.testing.assert_close(outs["dispatch"], outs["mask loop"], rtol=1e-4, atol=1e-5)
    times = {k: [] for k in fns}
    for _ in range(a.reps):
        for k, f in fns.items(): times[k].append(step(f)[0])
    print(f"MoE forward+backward: {a.tokens} tokens, width {a.width}, {a.experts} experts (hidden {a.hidden}), "
          f"top-{a.top_k}, {torch.get_num_threads()} threads, {a.reps} reps")
    for k, ts in times.items(): print(f"  {k:9s} median {statistics.median(ts)*1e3:8.1f} ms   best {min(ts)*1e3:8.1f} ms")
    r = statistics.median(times["dispatch"]) / statistics.median(times["mask loop"])
    print(f"  dispatch / mask loop (median) = {r:.2f}x (target <= 1.0)")
    return times

if __name__ == "__main__": main()
