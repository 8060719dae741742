"""RWKV-7 "Goose" (x070), as trained by MIDI-RWKV (docs/original-release.md#model), with RWKV-LM's parameter names.

Two modes share the weights:
  * sequence mode, ``model(idx, state)`` -> logits ``[B, T, V]`` and the final state (training,
    prompt ingestion; the WKV kernel is chosen by ``kernels.dispatch``);
  * step mode, ``model.step(tokens, state)`` -> logits ``[B, V]`` for one token per stream.
Running a prompt in sequence mode and then stepping gives the same logits as one sequence run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midi_rwkv.model.config import RWKVConfig
from midi_rwkv.model.kernels import wkv7

GROUP_NORM_EPS = 64e-5  # 1e-5 * head_size_divisor**2 with divisor 8 (see docs/original-release.md#model)


@dataclass
class RWKVState:
    """Recurrent state of B streams: token-shift vectors and the WKV matrices of every layer."""

    att_shift: Tensor  # [L, B, C], the last ln1 output of each layer
    ffn_shift: Tensor  # [L, B, C], the last ln2 output of each layer
    wkv: Tensor  # [L, B, H, N, N] float32, row = value channel, column = key channel

    @classmethod
    def zeros(cls, config: RWKVConfig, batch: int, device=None, dtype=torch.float32) -> "RWKVState":
        L, C, H, N = config.n_layer, config.n_embd, config.n_head, config.head_size
        return cls(
            torch.zeros(L, batch, C, device=device, dtype=dtype),
            torch.zeros(L, batch, C, device=device, dtype=dtype),
            torch.zeros(L, batch, H, N, N, device=device, dtype=torch.float32),
        )

    @property
    def batch(self) -> int:
        return self.wkv.shape[1]

    def select(self, index: Tensor | list[int]) -> "RWKVState":
        """The streams at ``index`` (repeats allowed: forking one prompt into K candidates)."""
        index = torch.as_tensor(index, device=self.wkv.device)
        return RWKVState(self.att_shift[:, index], self.ffn_shift[:, index], self.wkv[:, index])

    def clone(self) -> "RWKVState":
        return RWKVState(self.att_shift.clone(), self.ffn_shift.clone(), self.wkv.clone())


def _shift(x: Tensor, previous: Tensor | None) -> Tensor:
    """x[t-1] for every t, with ``previous`` (or zeros) before the first token. x: [B, T, C]."""
    first = torch.zeros_like(x[:, :1]) if previous is None else previous[:, None].to(x.dtype)
    return torch.cat([first, x[:, :-1]], dim=1)


class TimeMix(nn.Module):
    def __init__(self, config: RWKVConfig, layer_id: int):
        super().__init__()
        C, H, N = config.n_embd, config.n_head, config.head_size
        self.layer_id, self.n_head, self.head_size = layer_id, H, N
        mix = lambda: nn.Parameter(torch.zeros(1, 1, C))  # noqa: E731
        self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g = (mix() for _ in range(6))
        self.w0, self.w1, self.w2 = (
            mix(),
            nn.Parameter(torch.zeros(C, config.decay_lora)),
            nn.Parameter(torch.zeros(config.decay_lora, C)),
        )
        self.a0, self.a1, self.a2 = (
            mix(),
            nn.Parameter(torch.zeros(C, config.aaa_lora)),
            nn.Parameter(torch.zeros(config.aaa_lora, C)),
        )
        self.v0, self.v1, self.v2 = (
            mix(),
            nn.Parameter(torch.zeros(C, config.mv_lora)),
            nn.Parameter(torch.zeros(config.mv_lora, C)),
        )
        if layer_id == 0:  # layer 0 makes v_first and mixes nothing in: kept for RWKV-LM's key set, never trained
            # (and DDP, which needs every trainable parameter to get a gradient, can then run without searching)
            for p in (self.v0, self.v1, self.v2):
                p.requires_grad_(False)
        self.g1, self.g2 = (
            nn.Parameter(torch.zeros(C, config.gate_lora)),
            nn.Parameter(torch.zeros(config.gate_lora, C)),
        )
        self.k_k, self.k_a, self.r_k = mix(), mix(), nn.Parameter(torch.zeros(H, N))
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=GROUP_NORM_EPS)

    def forward(self, x: Tensor, v_first: Tensor | None, shift: Tensor | None, wkv_state: Tensor | None):
        """x: [B, T, C] (ln1 output). Returns (out, v_first, new wkv state)."""
        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        xx = _shift(x, shift) - x
        xr, xw, xk, xv, xa, xg = (x + xx * m for m in (self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g))
        r = self.receptance(xr)
        w = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5  # log-log decay, < -0.5
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v
        else:  # value residual towards layer 0's value
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)  # in-context learning rate
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0, eps=1e-12).view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)
        heads = lambda t: t.view(B, T, H, N)  # noqa: E731
        y, new_state = wkv7(heads(r), heads(w), heads(k), heads(v), heads(-kk), heads(kk * a), wkv_state)
        y = self.ln_x(y.reshape(B * T, C).to(x.dtype)).view(B, T, C)
        bonus = (heads(r) * heads(k) * self.r_k).sum(dim=-1, keepdim=True) * heads(v)  # per-head scalar times v
        y = y + bonus.view(B, T, C)
        return self.output(y * g), v_first, new_state


class ChannelMix(nn.Module):
    def __init__(self, config: RWKVConfig):
        super().__init__()
        C = config.n_embd
        self.x_k = nn.Parameter(torch.zeros(1, 1, C))
        self.key = nn.Linear(C, config.dim_ffn, bias=False)
        self.value = nn.Linear(config.dim_ffn, C, bias=False)

    def forward(self, x: Tensor, shift: Tensor | None) -> Tensor:
        xk = x + (_shift(x, shift) - x) * self.x_k
        return self.value(torch.relu(self.key(xk)) ** 2)


class Block(nn.Module):
    def __init__(self, config: RWKVConfig, layer_id: int):
        super().__init__()
        C = config.n_embd
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(config, layer_id)
        self.ffn = ChannelMix(config)

    def forward(self, x, v_first, state: RWKVState | None):
        i = self.layer_id
        if i == 0:
            x = self.ln0(x)
        h = self.ln1(x)
        att, v_first, wkv_state = self.att(
            h, v_first, None if state is None else state.att_shift[i], None if state is None else state.wkv[i]
        )
        x = x + att
        h2 = self.ln2(x)
        x = x + self.ffn(h2, None if state is None else state.ffn_shift[i])
        return x, v_first, (h[:, -1], h2[:, -1], wkv_state)


class RWKV7(nn.Module):
    """The model. Parameter names and shapes match RWKV-LM x070 checkpoints."""

    def __init__(self, config: RWKVConfig):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.gradient_checkpointing = False

    def forward(self, idx: Tensor, state: RWKVState | None = None, last_only: bool = False) -> tuple[Tensor, RWKVState]:
        """Sequence mode. idx: [B, T] token ids; ``state`` continues earlier streams (default: zeros).

        Returns logits [B, T, V] (``last_only``: [B, 1, V], the next token's, which is all that reading a
        prompt needs: the [T, V] logits are by far its largest tensor) and the state after the last token.
        """
        x = self.emb(idx)
        v_first = None
        shifts_att, shifts_ffn, wkvs = [], [], []
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                x, v_first, (sa, sf, sw) = torch.utils.checkpoint.checkpoint(
                    block, x, v_first, state, use_reentrant=False
                )
            else:
                x, v_first, (sa, sf, sw) = block(x, v_first, state)
            shifts_att.append(sa)
            shifts_ffn.append(sf)
            wkvs.append(sw)
        logits = self.head(self.ln_out(x[:, -1:] if last_only else x))
        return logits, RWKVState(torch.stack(shifts_att), torch.stack(shifts_ffn), torch.stack(wkvs))

    @torch.no_grad()
    def step(self, tokens: Tensor, state: RWKVState) -> tuple[Tensor, RWKVState]:
        """Step mode: one token for each of B streams. tokens: [B]. Returns logits [B, V] and the new state."""
        logits, state = self(tokens[:, None], state)
        return logits[:, 0], state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
