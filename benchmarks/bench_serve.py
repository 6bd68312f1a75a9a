"""Requests/s, p50/p95 latency and aggregate tokens/s of the HTTP service (lesson 12, "How fast under load").

Starts `tinygpt.serve.run_server` (the bundled model) in a subprocess on a free port of 127.0.0.1 and sends
64-token completions (`stop_at_eot=False`, so every request is exactly 64 tokens; temperature 0.8, top-k 50: the page's settings) from 1, 4 and 16 concurrent
clients with `tinygpt.serve.load_test`. Each level runs `--repeats` times (levels interleaved, so a noisy neighbour
on a shared machine hurts all of them about equally); the median of each figure is reported.

    python benchmarks/bench_serve.py              # 3 repeats (a few minutes on 2 cores)
    python benchmarks/bench_serve.py --quick      # 1 repeat, fewer requests (a smoke run)
    python benchmarks/bench_serve.py --threads 1  # one torch thread in the server (a machine shared with other jobs)

Goals: aggregate tokens/s at concurrency 16 >= 4x concurrency 1; p95 latency at 16 < 3x the concurrency-1 latency.
"""
import argparse, os, platform, socket, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path
import httpx
from tinygpt.serve import load_test

ROOT = Path(__file__).resolve().parents[1]

def cpu_name():
    try: return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def start_server(threads=None):
    port = free_port()
    code = f"from tinygpt.serve import run_server; run_server(port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, end = f"http://127.0.0.1:{port}", time.time() + 120
    while time.time() < end:
        if proc.poll() is not None: sys.exit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200: return proc, url
        except httpx.HTTPError: time.sleep(0.3)
    proc.kill(); sys.exit("the server did not start in 120 s")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repeat, fewer requests")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the server (OMP_NUM_THREADS; default: torch's choice)")
    args = ap.parse_args()
    repeats, levels = (1 if args.quick else args.repeats), (1, 4, 16)
    n_requests = {1: 4, 4: 8, 16: 16} if args.quick else {1: 8, 4: 16, 16: 32}
    proc, url = start_server(args.threads)
    try:
        load_test(url, 4, 8)                                                   # warm-up: load the model, fill caches
        runs = {c: [] for c in levels}
        for _ in range(repeats):
            for c in levels: runs[c].append(load_test(url, c, n_requests[c]))
    finally: proc.terminate(); proc.wait(15)
    med = {c: {k: statistics.median(r[k] for r in runs[c]) for k in ("requests_per_s", "p50_s", "p95_s", "tokens_per_s")} for c in levels}
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC | {cpu_name()} | {os.cpu_count()} CPUs | "
          f"load avg {os.getloadavg()[0]:.1f} | server threads {args.threads or 'default'} | bundled model, 64-token completions, median of {repeats}")
    print(f"{'clients':>8} {'requests':>9} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'tokens/s':>9}")
    for c in levels:
        m = med[c]
        print(f"{c:>8} {n_requests[c]:>9} {m['requests_per_s']:>7.2f} {m['p50_s']:>7.2f} {m['p95_s']:>7.2f} {m['tokens_per_s']:>9.1f}")
    speedup, lat = med[16]["tokens_per_s"] / med[1]["tokens_per_s"], med[16]["p95_s"] / med[1]["p50_s"]
    print(f"tokens/s at 16 clients: {speedup:.1f}x one client (goal >= 4x): {'met' if speedup >= 4 else 'NOT met'}")
    print(f"p95 latency at 16 clients: {lat:.2f}x one client's latency (goal < 3x): {'met' if lat < 3 else 'NOT met'}")

if __name__ == "__main__": main()
