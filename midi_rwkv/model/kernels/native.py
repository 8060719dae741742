"""Autograd wrappers around the native WKV7 operators (same signature as the reference)."""

from __future__ import annotations

import torch
from torch import Tensor

from midi_rwkv.model.kernels import cuda_emulation
from midi_rwkv.model.kernels.build import load_cpu_op, load_cuda_op


def check_inputs(r: Tensor, w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, state: Tensor | None) -> None:
    """Readable errors for shape mismatches (the native code trusts its inputs)."""
    if r.dim() != 4:
        raise ValueError(f"wkv7 expects [B, T, H, N] inputs, got r of shape {tuple(r.shape)}")
    for name, x in zip("wkvab", (w, k, v, a, b)):
        if x.shape != r.shape:
            raise ValueError(f"wkv7: {name} has shape {tuple(x.shape)}, r has {tuple(r.shape)}")
        if x.device != r.device:
            raise ValueError(f"wkv7: {name} is on {x.device}, r on {r.device}")
    B, _, H, N = r.shape
    if state is not None and state.shape != (B, H, N, N):
        raise ValueError(f"wkv7: state must be [B, H, N, N] = {(B, H, N, N)}, got {tuple(state.shape)}")


class WKV7CPU(torch.autograd.Function):
    """fp32 C++ operator; inputs of other dtypes are computed in fp32 and cast back."""

    @staticmethod
    def forward(ctx, r, w, k, v, a, b, state):
        B, _, H, N = r.shape
        inputs = [x.float().contiguous() for x in (r, w, k, v, a, b)]
        s0 = state.float().contiguous() if state is not None else r.new_zeros(B, H, N, N, dtype=torch.float32)
        save = any(ctx.needs_input_grad)
        y, s_final, checkpoints = load_cpu_op().forward(*inputs, s0, save)
        if save:
            ctx.save_for_backward(*inputs, checkpoints)
        ctx.dtypes = [x.dtype for x in (r, w, k, v, a, b)] + [state.dtype if state is not None else None]
        ctx.mark_non_differentiable()
        return y.to(r.dtype), s_final

    @staticmethod
    def backward(ctx, dy, ds_final):
        *inputs, checkpoints = ctx.saved_tensors
        dy = torch.zeros_like(inputs[0]) if dy is None else dy.float().contiguous()
        B, _, H, N = inputs[0].shape
        ds = inputs[0].new_zeros(B, H, N, N) if ds_final is None else ds_final.float().contiguous()
        grads = load_cpu_op().backward(*inputs, checkpoints, dy, ds)
        return tuple(None if dt is None else g.to(dt) for g, dt in zip(grads, ctx.dtypes))


def wkv7_cpu(r, w, k, v, a, b, state=None):
    check_inputs(r, w, k, v, a, b, state)
    return WKV7CPU.apply(r, w, k, v, a, b, state)


_CHUNK = 16
_PAD_W = -60.0  # exp(-exp(-60)) == 1.0 in fp32: padded steps leave the state unchanged


class WKV7CUDA(torch.autograd.Function):
    """bf16 or fp32 CUDA operator; T is padded to a multiple of 16 with identity steps.

    ``op`` is the operator object (``forward``/``backward`` with the torch binding's signatures):
    ``load_cuda_op(N)`` on a GPU, or :mod:`~midi_rwkv.model.kernels.cuda_emulation` so that the tests
    run this padding, dtype and slicing logic, and the kernel's algorithm, on a CPU.
    """

    @staticmethod
    def forward(ctx, op, r, w, k, v, a, b, state):
        B, T, H, N = r.shape
        dtype = torch.bfloat16 if r.dtype == torch.bfloat16 else torch.float32
        pad = (-T) % _CHUNK
        inputs = []
        for name, x in zip("rwkvab", (r, w, k, v, a, b)):
            x = x.to(dtype)
            if pad:
                x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad), value=_PAD_W if name == "w" else 0.0)
            inputs.append(x.contiguous())
        s0 = state.float().contiguous() if state is not None else r.new_zeros(B, H, N, N, dtype=torch.float32)
        y, s_final, checkpoints, sa = op.forward(*inputs, s0)
        ctx.save_for_backward(*inputs, checkpoints, sa)
        ctx.op = op
        ctx.meta = (T, pad, [x.dtype for x in (r, w, k, v, a, b)] + [state.dtype if state is not None else None])
        return y[:, :T].to(r.dtype), s_final

    @staticmethod
    def backward(ctx, dy, ds_final):
        *inputs, checkpoints, sa = ctx.saved_tensors
        T, pad, dtypes = ctx.meta
        B, _, H, N = inputs[0].shape
        dy = torch.zeros_like(inputs[0][:, :T]) if dy is None else dy
        dy = torch.nn.functional.pad(dy.to(inputs[0].dtype), (0, 0, 0, 0, 0, pad)).contiguous()
        ds = inputs[0].new_zeros(B, H, N, N, dtype=torch.float32) if ds_final is None else ds_final.float().contiguous()
        grads = ctx.op.backward(*inputs, checkpoints, sa, dy, ds)
        out = [g[:, :T] for g in grads[:6]] + [grads[6]]
        return (None,) + tuple(None if dt is None else g.to(dt) for g, dt in zip(out, dtypes))


def wkv7_cuda(r, w, k, v, a, b, state=None):
    check_inputs(r, w, k, v, a, b, state)
    return WKV7CUDA.apply(load_cuda_op(r.shape[-1]), r, w, k, v, a, b, state)


def wkv7_cuda_emulated(r, w, k, v, a, b, state=None):
    """The CUDA path (wrapper and kernel algorithm) on any device, in PyTorch: for tests, never dispatched."""
    check_inputs(r, w, k, v, a, b, state)
    return WKV7CUDA.apply(cuda_emulation, r, w, k, v, a, b, state)
