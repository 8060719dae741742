"""WKV7 forward+backward throughput: the PyTorch reference vs the C++ CPU operator (and CUDA on a GPU).

    python bench/wkv.py                 # B=4, T=1024, H=6, N=64 (the paper's heads), 3 timed runs each
    python bench/wkv.py --T 256 --runs 5

Each row times forward and backward of the same inputs (fresh leaves every run, one warm-up run
first); the speed-up column compares with the reference on the same device. Nothing is asserted:
record the table in your notes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from midi_rwkv.model.kernels import wkv7_reference
from midi_rwkv.model.kernels.native import wkv7_cpu, wkv7_cuda


def make_inputs(B, T, H, N, device, dtype):
    g = torch.Generator().manual_seed(0)
    rnd = lambda: torch.randn(B, T, H, N, generator=g)  # noqa: E731
    kk = F.normalize(rnd(), dim=-1)
    xs = [rnd(), -F.softplus(-rnd()) - 0.5, rnd(), rnd(), -kk, kk * torch.sigmoid(rnd())]
    return [x.to(device=device, dtype=dtype) for x in xs]


def time_fwd_bwd(fn, inputs, runs: int, sync) -> tuple[float, float]:
    """Median seconds of forward and of backward over ``runs`` runs (after one warm-up)."""
    fwd, bwd = [], []
    for i in range(runs + 1):
        leaves = [x.clone().requires_grad_() for x in inputs]
        sync()
        t0 = time.perf_counter()
        y, _ = fn(*leaves)
        sync()
        t1 = time.perf_counter()
        y.float().sum().backward()
        sync()
        t2 = time.perf_counter()
        if i:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    return statistics.median(fwd), statistics.median(bwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--B", type=int, default=4, help="batch (default 4)")
    parser.add_argument("--T", type=int, default=1024, help="sequence length (default 1024)")
    parser.add_argument("--H", type=int, default=6, help="heads (default 6)")
    parser.add_argument("--N", type=int, default=64, help="head size (default 64)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per row (default 3)")
    args = parser.parse_args()
    B, T, H, N = args.B, args.T, args.H, args.N
    tokens = B * T
    rows = []
    cpu_inputs = make_inputs(B, T, H, N, "cpu", torch.float32)
    ref = time_fwd_bwd(wkv7_reference, cpu_inputs, args.runs, lambda: None)
    rows.append(("cpu", "torch reference (fp32)", *ref, 1.0))
    op = time_fwd_bwd(wkv7_cpu, cpu_inputs, args.runs, lambda: None)
    rows.append(("cpu", "C++ operator (fp32)", *op, sum(ref) / sum(op)))
    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        gpu32 = make_inputs(B, T, H, N, "cuda", torch.float32)
        gref = time_fwd_bwd(wkv7_reference, gpu32, args.runs, sync)
        rows.append(("cuda", "torch reference (fp32)", *gref, 1.0))
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            cu = time_fwd_bwd(wkv7_cuda, make_inputs(B, T, H, N, "cuda", dtype), args.runs, sync)
            rows.append(("cuda", f"CUDA operator ({name})", *cu, sum(gref) / sum(cu)))
    print(
        f"WKV7 forward+backward, B={B} T={T} H={H} N={N}, {torch.get_num_threads()} CPU threads, median of {args.runs}"
    )
    print("| device | kernel | forward s | backward s | fwd+bwd tokens/s | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for device, name, f, b, speedup in rows:
        print(f"| {device} | {name} | {f:.3f} | {b:.3f} | {tokens / (f + b):,.0f} | {speedup:.1f}x |")


if __name__ == "__main__":
    main()
