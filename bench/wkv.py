"""WKV7 forward+backward throughput: the PyTorch reference vs the C++ CPU operator, and on a GPU the CUDA operator
and flash-linear-attention's RWKV-7 chunk kernel (``fla.ops.rwkv7.chunk_rwkv7``, when ``fla-core`` is installed).

    python bench/wkv.py                          # B=4, T=1024, H=6, N=64 (the paper's heads), 3 timed runs each
    python bench/wkv.py --T 256 --runs 5
    python bench/wkv.py --devices cuda --json out/wkv.json

Each row times forward and backward of the same inputs (fresh leaves every run, one warm-up run first); the
speed-up column compares with the reference on the same device. The error columns check each kernel's values on
the timed inputs: relative error of y and the largest of the input gradients' (r w k v a b, initial state) against
the fp32 reference run on the same inputs (bf16 rows: the inputs rounded to bf16). Nothing is asserted: record the
table in your notes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from midi_rwkv.model.kernels import wkv7_reference
from midi_rwkv.model.kernels.native import wkv7_cpu, wkv7_cuda

FLA_LOWER_BOUND = -0.6065306597126334  # -exp(-0.5): our w < -0.5 (as the model makes it) keeps log(d) above this


def make_inputs(B, T, H, N, device, dtype):
    """r w k v a b [B, T, H, N] and an initial state [B, H, N, N] (fp32), shaped like the model's."""
    g = torch.Generator().manual_seed(0)
    rnd = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    kk = F.normalize(rnd(B, T, H, N), dim=-1)
    xs = [rnd(B, T, H, N), -F.softplus(-rnd(B, T, H, N)) - 0.5, rnd(B, T, H, N), rnd(B, T, H, N), -kk,
          kk * torch.sigmoid(rnd(B, T, H, N))]
    return [x.to(device=device, dtype=dtype) for x in xs] + [0.1 * rnd(B, H, N, N).to(device)]


def fla_rwkv7(r, w, k, v, a, b, state=None):
    """flash-linear-attention's chunk kernel behind our signature and conventions.

    fla takes the log decay, log(d) = -exp(w) (ours: w with d = exp(-exp(w))), and keeps the state as
    [B, H, K, V] (ours: [B, H, V, K], row = value channel). It is called as fla's own RWKV-7 layer calls it
    (safe_gate, lower_bound, chunk_size=64), where this fla version has those arguments.
    """
    from fla.ops.rwkv7 import chunk_rwkv7

    wanted = {"safe_gate": True, "lower_bound": FLA_LOWER_BOUND, "chunk_size": 64}
    accepted = inspect.signature(chunk_rwkv7).parameters
    extra = {name: value for name, value in wanted.items() if name in accepted}
    s0 = None if state is None else state.transpose(-1, -2).contiguous()
    y, s = chunk_rwkv7(r, -torch.exp(w.float()).to(w.dtype), k, v, a, b, scale=1.0, initial_state=s0,
                       output_final_state=True, **extra)
    return y, s.transpose(-1, -2)


def has_fla() -> str | None:
    """None when fla's RWKV-7 chunk kernel can run here, else why not."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        from fla.ops.rwkv7 import chunk_rwkv7  # noqa: F401
    except Exception as err:  # not installed, or its Triton/transformers imports failed
        return f"fla.ops.rwkv7 not importable ({type(err).__name__}: {err})"
    return None


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


def rel_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def value_errors(fn, inputs) -> tuple[float, float]:
    """(relative error of y, largest relative error of the 7 input gradients) against the fp32 reference."""
    g = torch.Generator().manual_seed(1)
    dy = torch.randn(inputs[0].shape, generator=g).to(inputs[0].device)
    outs = []
    for f, xs in ((fn, inputs), (wkv7_reference, [x.float() for x in inputs])):
        leaves = [x.clone().requires_grad_() for x in xs]
        y, s = f(*leaves)
        ((y.float() * dy).sum() + s.float().sum()).backward()
        outs.append((y, [x.grad for x in leaves]))
    (y, grads), (y_ref, grads_ref) = outs
    return rel_error(y, y_ref), max(rel_error(a, b) for a, b in zip(grads, grads_ref))


def rows_for(device: str, shape, runs: int):
    """One row per kernel and dtype, yielded as each is measured."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fp32 = make_inputs(*shape, device, torch.float32)
    kernels = [("torch reference", wkv7_reference, torch.float32)]
    if device == "cpu":
        kernels.append(("C++ operator", wkv7_cpu, torch.float32))
    else:
        kernels += [("CUDA operator", wkv7_cuda, torch.float32), ("CUDA operator", wkv7_cuda, torch.bfloat16)]
        why_not = has_fla()
        if why_not:
            print(f"skipping fla's chunk_rwkv7: {why_not}")
        else:
            kernels += [("fla chunk_rwkv7", fla_rwkv7, torch.float32), ("fla chunk_rwkv7", fla_rwkv7, torch.bfloat16)]
    ref_seconds = None
    for name, fn, dtype in kernels:
        inputs = [x.to(dtype) for x in fp32[:6]] + [fp32[6]]  # the state stays fp32, as the model keeps it
        try:
            f, b = time_fwd_bwd(fn, inputs, runs, sync)
            y_err, grad_err = value_errors(fn, inputs)
        except Exception as err:  # the outside anchor may fail on this machine; our own kernels must not
            if fn is not fla_rwkv7:
                raise
            print(f"fla chunk_rwkv7 ({dtype}) failed: {type(err).__name__}: {err}")
            continue
        ref_seconds = ref_seconds or f + b
        yield {"device": device, "kernel": name, "dtype": str(dtype).removeprefix("torch."), "forward_s": f,
               "backward_s": b, "tokens_per_s": shape[0] * shape[1] / (f + b), "speedup": ref_seconds / (f + b),
               "y_rel_error": y_err, "grad_rel_error": grad_err}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--B", type=int, default=4, help="batch (default 4)")
    parser.add_argument("--T", type=int, default=1024, help="sequence length (default 1024)")
    parser.add_argument("--H", type=int, default=6, help="heads (default 6)")
    parser.add_argument("--N", type=int, default=64, help="head size (default 64)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per row (default 3)")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"],
                        help="where to run (default: cpu, and cuda when available)")
    parser.add_argument("--json", help="also write the setting and the rows to this JSON file")
    args = parser.parse_args()
    shape = (args.B, args.T, args.H, args.N)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA device here")
    setting = {"B": args.B, "T": args.T, "H": args.H, "N": args.N, "runs": args.runs, "cpu_threads":
               torch.get_num_threads(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    print(f"WKV7 forward+backward, B={args.B} T={args.T} H={args.H} N={args.N}, {torch.get_num_threads()} CPU "
          f"threads, median of {args.runs}")
    print("| device | kernel | dtype | forward s | backward s | fwd+bwd tokens/s | speed-up | y error | grad error |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|", flush=True)
    rows = []
    for device in devices:
        for r in rows_for(device, shape, args.runs):
            rows.append(r)
            print(f"| {r['device']} | {r['kernel']} | {r['dtype']} | {r['forward_s']:.4f} | {r['backward_s']:.4f} | "
                  f"{r['tokens_per_s']:,.0f} | {r['speedup']:.1f}x | {r['y_rel_error']:.1e} | "
                  f"{r['grad_rel_error']:.1e} |", flush=True)
            if args.json:  # after every row: a run stopped at its time limit keeps what it measured
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"setting": setting, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
