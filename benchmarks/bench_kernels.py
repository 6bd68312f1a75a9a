"""Peak memory and time of loss + backward for the LM head: plain `F.cross_entropy` on the full logits against
`tinygpt.kernels.fused_linear_cross_entropy` (liger on CUDA, the chunked PyTorch fallback elsewhere).

Method (CPU): every variant runs once in a fresh subprocess. After the inputs exist (hidden (N, C), weight (V, C),
target (N,)) the child reads its peak resident set size (`resource.getrusage(...).ru_maxrss`), runs loss + backward
once, and reads the peak again; the difference is the extra memory the variant needed at its worst moment
(PyTorch's CPU allocations are invisible to `tracemalloc`, the RSS high-water mark is not). On CUDA the child uses
`torch.cuda.max_memory_allocated` instead. Timings are of that single run (plus `--reps` more), wall clock.

    python benchmarks/bench_kernels.py            # 4 x 512 tokens, vocab 50,304, width 512
    python benchmarks/bench_kernels.py --quick    # 512 tokens: a fast smoke run
"""
import argparse, json, os, resource, subprocess, sys, time

VARIANTS = ("plain", "fused")

def child(a):
    import torch, torch.nn.functional as F
    from tinygpt.kernels import fused_linear_cross_entropy, kernel_backend
    dev = torch.device(a.device)
    torch.manual_seed(0)
    hidden = torch.empty(a.tokens, a.width, device=dev).normal_().requires_grad_()   # in place: no temporaries
    weight = torch.empty(a.vocab, a.width, device=dev).normal_(0, 0.02).requires_grad_()  # that would raise the baseline
    target = torch.randint(0, a.vocab, (a.tokens,), device=dev)
    if a.variant == "plain": fn = lambda: F.cross_entropy(hidden @ weight.T, target)
    else: fn = lambda: fused_linear_cross_entropy(hidden, weight, target, chunk_size=a.chunk)
    def peak():
        if dev.type == "cuda": return torch.cuda.max_memory_allocated(dev)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux reports KiB
    if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(dev)
    base = peak() if dev.type != "cuda" else torch.cuda.memory_allocated(dev)
    times = []
    for _ in range(1 + a.reps):
        hidden.grad = weight.grad = None
        t0 = time.perf_counter()
        loss = fn(); loss.backward()
        if dev.type == "cuda": torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    print(json.dumps(dict(variant=a.variant, backend=str(kernel_backend(dev)) if a.variant == "fused" else "torch",
                          peak_extra_mb=(peak() - base) / 2**20, seconds=min(times), loss=loss.item(),
                          grad_w_norm=weight.grad.norm().item(), threads=torch.get_num_threads())))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=4 * 512); p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--width", type=int, default=512); p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--reps", type=int, default=0, help="extra timed runs after the measured one (time = fastest)")
    p.add_argument("--device", default="cpu"); p.add_argument("--quick", action="store_true", help="512 tokens")
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick: a.tokens = 512
    if a.variant: return child(a)
    print(f"loss + backward, {a.tokens} tokens x vocab {a.vocab} x width {a.width}, device {a.device}, chunk {a.chunk}")
    res = {}
    for v in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", v] + [f"--{k}={getattr(a, k)}" for k in ("tokens", "vocab", "width", "chunk", "reps", "device")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: sys.exit(f"variant {v} failed:\n{r.stderr}")
        res[v] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"  {v:6s} peak extra {res[v]['peak_extra_mb']:8.1f} MiB   {res[v]['seconds']:7.3f} s   loss {res[v]['loss']:.6f}   ({res[v]['backend']})")
    logits_mb = a.tokens * a.vocab * 4 / 2**20
    ratio = res["fused"]["peak_extra_mb"] / res["plain"]["peak_extra_mb"]
    print(f"  full fp32 logits would be {logits_mb:.1f} MiB; fused/plain peak memory = {ratio:.2f}x (target <= 0.5x)")
    same = abs(res["fused"]["loss"] - res["plain"]["loss"]) < 1e-4 and abs(res["fused"]["grad_w_norm"] / res["plain"]["grad_w_norm"] - 1) < 1e-4
    print(f"  same loss and grad norm: {same}")
    return res

if __name__ == "__main__": main()
