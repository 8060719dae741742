"""The WKV7 recurrence in plain PyTorch: the definition every other kernel is tested against.

For each batch element and head, with state S (N x N; row i = value channel, column j = key channel):
    sa_i = sum_j a_j S_ij
    S_ij = S_ij * d_j + sa_i * b_j + v_i * k_j,      d = exp(-exp(w))
    y_i  = sum_j S_ij r_j
(docs/original-release.md#wkv7-recurrence). Autograd differentiates the loop, initial state included.
"""

from __future__ import annotations

import torch
from torch import Tensor


def wkv7_reference(
    r: Tensor, w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Run the recurrence step by step.

    Args:
        r, w, k, v, a, b: ``[B, T, H, N]``; ``w`` is the log-log decay (decay ``d = exp(-exp(w))``).
        state: ``[B, H, N, N]`` initial state (default zeros).

    Returns:
        ``y`` ``[B, T, H, N]`` in the dtype of ``r``, and the final state ``[B, H, N, N]``, computed
        in float64 when ``r`` is float64 and in float32 otherwise.
    """
    B, T, H, N = r.shape
    dtype = torch.float64 if r.dtype == torch.float64 else torch.float32
    r, w, k, v, a, b = (x.to(dtype) for x in (r, w, k, v, a, b))
    d = torch.exp(-torch.exp(w))
    s = torch.zeros(B, H, N, N, dtype=dtype, device=r.device) if state is None else state.to(dtype)
    ys = []
    for t in range(T):
        sa = s @ a[:, t, :, :, None]  # [B, H, N, 1]
        s = s * d[:, t, :, None, :] + sa * b[:, t, :, None, :] + v[:, t, :, :, None] * k[:, t, :, None, :]
        ys.append((s @ r[:, t, :, :, None]).squeeze(-1))
    y = torch.stack(ys, dim=1) if ys else torch.zeros_like(r)
    return y.to(r.dtype if r.dtype == dtype else r.dtype), s
