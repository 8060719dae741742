"""The CUDA kernel's algorithm (``csrc/wkv7_cuda.cu``) in PyTorch, so that it is tested without a GPU.

This is not a fast path and dispatch never picks it: it exists so that the tests can run the CUDA
operator's algorithm, and the Python wrapper around it (padding, dtypes, slicing), on a CPU.
:func:`forward` and :func:`backward` have the torch binding's signatures and return lists
(``csrc/wkv7_cuda_op.cpp``), so this module can stand in for ``load_cuda_op(N)``. The kernel's
blocks (batch, head) and threads (rows of the state) become tensor dimensions; time is a Python
loop, as in the kernel. The steps, their order, what is saved and the dtypes it is stored in are
the kernel's; the additions inside each sum run in PyTorch's order and ``exp`` is not fast-math
``__expf``, so results agree to fp32 rounding, not bit for bit. (The kernel's backward keeps the
state transposed per thread; that changes no value, so this code keeps ``S`` upright.)

Forward, per step, with state ``S`` (row i = value channel, column j = key channel), all in fp32::

    d = exp(-exp(w));  sa_i = sum_j a_j S_ij;  S_ij = S_ij d_j + sa_i b_j + v_i k_j;  y_i = sum_j S_ij r_j

``y`` is rounded to the input dtype; ``sa`` is saved per step (fp32) and the state every 16 steps,
transposed (element ``(j, i)`` of a checkpoint holds ``S_ij``), as the kernel stores them.

Backward walks ``t = T-1 .. 0`` with ``S`` = the state after step ``t``: reloaded from the checkpoint
when ``(t + 1) % 16 == 0``, otherwise obtained by undoing step ``t + 1``. With ``dS`` = dL/dS after
step ``t`` (``dsT`` at the start)::

    dr_i = sum_j S_ji dy_j
    P = (S - v k^T - sa b^T) / d          (undo the step, dividing by the decay: P = S before step t)
    dS += dy r^T
    dw_i = (sum_j dS_ji P_ji) d_i (-exp(w_i));   dk_i = sum_j dS_ji v_j;   dv_i = sum_j dS_ij k_j
    dsa_i = sum_j dS_ij b_j;   db_i = sum_j dS_ji sa_j;   da_i = sum_j P_ji dsa_j
    dS = dS d^T + dsa a^T                 (dL/dS before step t)

and ``ds0`` is the final ``dS`` (fp32); the other gradients are rounded to the input dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK_LEN = 16  # _CHUNK_LEN_ in the .cu file


def _check(r: Tensor) -> None:
    # the binding's checks: bf16/fp32 only, and T a multiple of 16 (the wrapper pads)
    if r.dtype not in (torch.bfloat16, torch.float32):
        raise TypeError("wkv7 cuda: inputs must be bfloat16 or float32")
    if r.shape[1] % CHUNK_LEN:
        raise ValueError("wkv7 cuda: T must be a multiple of 16 (the wrapper pads)")


def forward(r: Tensor, w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, s0: Tensor) -> list[Tensor]:
    """``[y, sT, s_checkpoints, sa]`` like the CUDA op: y ``[B, T, H, N]`` in r's dtype, the rest fp32."""
    _check(r)
    B, T, H, N = r.shape
    dtype = r.dtype
    r, w, k, v, a, b = (x.float() for x in (r, w, k, v, a, b))  # to_float on read
    decay = torch.exp(-torch.exp(w))
    S = s0.float().clone()  # [B, H, N, N], S[..., i, j] = S_ij
    y, sa = r.new_empty(B, T, H, N), r.new_empty(B, T, H, N)
    checkpoints = r.new_empty(B, H, T // CHUNK_LEN, N, N)
    for t in range(T):
        sa_t = S @ a[:, t, :, :, None]  # [B, H, N, 1]: sa_i as a column
        S = S * decay[:, t, :, None, :] + sa_t * b[:, t, :, None, :] + v[:, t, :, :, None] * k[:, t, :, None, :]
        y[:, t] = (S @ r[:, t, :, :, None]).squeeze(-1)
        sa[:, t] = sa_t.squeeze(-1)
        if (t + 1) % CHUNK_LEN == 0:
            checkpoints[:, :, t // CHUNK_LEN] = S.mT  # stored transposed, as the kernel does
    return [y.to(dtype), S, checkpoints, sa]


def backward(r: Tensor, w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, s: Tensor, sa: Tensor, dy: Tensor,
             dsT: Tensor) -> list[Tensor]:
    """``[dr, dw, dk, dv, da, db, ds0]`` like the CUDA op: ds0 fp32, the rest in r's dtype."""
    _check(r)
    T = r.shape[1]
    dtype = r.dtype
    r, w, k, v, a, b, dy = (x.float() for x in (r, w, k, v, a, b, dy))
    log_decay = -torch.exp(w)  # d(log d)/dw, wi_factor in the kernel
    decay = torch.exp(log_decay)
    grads = [torch.empty_like(r) for _ in range(6)]  # dr, dw, dk, dv, da, db
    S = torch.zeros_like(s[:, :, 0])  # state after step t, S[..., i, j] = S_ij (stateT = 0 in the kernel)
    dS = dsT.float().clone()  # dL/dS after step t
    for t in range(T - 1, -1, -1):
        r_t, k_t, v_t, a_t, b_t, dy_t, sa_t, d_t = (x[:, t] for x in (r, k, v, a, b, dy, sa, decay))
        if (t + 1) % CHUNK_LEN == 0:
            S = s[:, :, t // CHUNK_LEN].mT  # reload: the checkpoint is exact, undone steps are not
        grads[0][:, t] = (S.mT @ dy_t[..., None]).squeeze(-1)  # dr_i = sum_j S_ji dy_j
        # undo step t, multiplying by 1/d as the kernel does (d >= 0.545 in the model: errors stay small over 16 steps)
        S = S - v_t[..., :, None] * k_t[..., None, :] - sa_t[..., :, None] * b_t[..., None, :]
        S = S * (1.0 / d_t)[..., None, :]
        dS = dS + dy_t[..., :, None] * r_t[..., None, :]
        dsa = (dS @ b_t[..., None]).squeeze(-1)
        grads[1][:, t] = (dS * S).sum(-2) * d_t * log_decay[:, t]
        grads[2][:, t] = (dS.mT @ v_t[..., None]).squeeze(-1)
        grads[3][:, t] = (dS @ k_t[..., None]).squeeze(-1)
        grads[4][:, t] = (S.mT @ dsa[..., None]).squeeze(-1)
        grads[5][:, t] = (dS.mT @ sa_t[..., None]).squeeze(-1)
        dS = dS * d_t[..., None, :] + dsa[..., :, None] * a_t[..., None, :]
    return [g.to(dtype) for g in grads] + [dS]
