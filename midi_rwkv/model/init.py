"""The paper's initialisation (RWKV-LM ``generate_init_weight`` for x070, docs/original-release.md#initialisation)."""

from __future__ import annotations

import math

import torch
from torch import nn

from midi_rwkv.model.rwkv7 import RWKV7


def _orthogonal(tensor: torch.Tensor, gain: float, tall_factor: bool = False) -> None:
    """Orthogonal init; ``tall_factor`` adds RWKV-LM's sqrt(rows/cols) for the in-module low-rank matrices."""
    rows, cols = tensor.shape
    nn.init.orthogonal_(tensor, gain=gain * (math.sqrt(rows / cols) if tall_factor and rows > cols else 1.0))


@torch.no_grad()
def init_weights(model: RWKV7, seed: int | None = None) -> RWKV7:
    """Initialise ``model`` in place as RWKV-LM does for a fresh x070 model; returns it."""
    if seed is not None:
        torch.manual_seed(seed)
    config = model.config
    C, L, V = config.n_embd, config.n_layer, config.vocab_size
    ddd = torch.arange(C, dtype=torch.float32) / C
    for layer, block in enumerate(model.blocks):
        rho = 1.0 - layer / L  # ratio_1_to_almost0
        lam = layer / (L - 1) if L > 1 else 0.0  # ratio_0_to_1
        att = block.att
        shape = lambda t: t.view(1, 1, C)  # noqa: E731
        att.x_r.copy_(shape(1 - ddd ** (0.2 * rho)))
        att.x_w.copy_(shape(1 - ddd ** (0.9 * rho)))
        att.x_k.copy_(shape(1 - (ddd ** (0.9 * rho) + 0.4 * lam)))
        att.x_v.copy_(shape(1 - (ddd ** (0.4 * rho) + 0.6 * lam)))
        att.x_a.copy_(shape(1 - ddd ** (0.9 * rho)))
        att.x_g.copy_(shape(1 - ddd ** (0.2 * rho)))
        decay = torch.tensor([-7 + 5 * (c / (C - 1)) ** (0.85 + 1.0 * lam**0.5) for c in range(C)])
        att.w0.copy_(shape(decay + 0.5))
        for low in (att.w1, att.a1, att.v1, att.g1):
            low.zero_()
        for up in (att.w2, att.a2, att.v2, att.g2):
            _orthogonal(up, 0.1, tall_factor=True)
        att.a0.zero_()
        att.v0.fill_(1.0)
        att.k_k.fill_(0.85)
        att.k_a.fill_(1.0)
        att.r_k.zero_()
        block.ffn.x_k.copy_(shape(1 - ddd ** (rho**4)))
        # generate_init_weight overrides the 2-D ".weight" matrices:
        att.output.weight.zero_()
        block.ffn.value.weight.zero_()
        _orthogonal(att.key.weight, 0.1)
        for m in (att.receptance, att.value, block.ffn.key):
            _orthogonal(m.weight, 1.0)
        att.ln_x.weight.fill_(((layer + 1) / L) ** 0.7)
        att.ln_x.bias.zero_()
    nn.init.uniform_(model.emb.weight, -1e-4, 1e-4)
    _orthogonal(model.head.weight, 0.5 * math.sqrt(V / C) if V > C else 0.5)  # logits start with std ~0.5
    return model
