"""The RWKV-7 ("x070") model configuration, with the paper's preset and a tiny one for tests."""

from __future__ import annotations

import json
import re
from functools import partial
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


def _lora_dim(n_embd: int, multiplier: float, power: float) -> int:
    """RWKV-LM's rule for the low-rank inner sizes: max(32, round(m * C^p / 32) * 32)."""
    return max(32, round(multiplier * n_embd**power / 32) * 32)


@dataclass
class RWKVConfig:
    """Shape of an RWKV-7 model. The low-rank sizes default to RWKV-LM's rule (docs/original-release.md#model)."""

    n_layer: int = field(metadata={"help": "number of blocks"})
    n_embd: int = field(metadata={"help": "model width C"})
    vocab_size: int = field(metadata={"help": "tokenizer vocabulary size V"})
    head_size: int = field(default=64, metadata={"help": "channels per WKV head N (C must be a multiple)"})
    ctx_len: int = field(default=2048, metadata={"help": "training sequence length"})
    dim_ffn: int | None = field(default=None, metadata={"help": "channel-mix hidden size (default 4C)"})
    decay_lora: int | None = field(default=None, metadata={"help": "decay low-rank size (default by rule)"})
    aaa_lora: int | None = field(default=None, metadata={"help": "in-context rate low-rank size (default by rule)"})
    mv_lora: int | None = field(default=None, metadata={"help": "value-residual low-rank size (default by rule)"})
    gate_lora: int | None = field(default=None, metadata={"help": "gate low-rank size (default by rule)"})

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "vocab_size", "head_size", "ctx_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.head_size:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of head_size ({self.head_size})")
        c = self.n_embd
        self.dim_ffn = self.dim_ffn or 4 * c
        self.decay_lora = self.decay_lora or _lora_dim(c, 1.8, 0.5)
        self.aaa_lora = self.aaa_lora or _lora_dim(c, 1.8, 0.5)
        self.mv_lora = self.mv_lora or _lora_dim(c, 1.3, 0.5)
        self.gate_lora = self.gate_lora or _lora_dim(c, 0.6, 0.8)

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RWKVConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "RWKVConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def paper_config(vocab_size: int = 16000) -> RWKVConfig:
    """MIDI-RWKV as published: 12 layers x 384, head 64, vocabulary 16,000 (35,085,312 parameters)."""
    return RWKVConfig(n_layer=12, n_embd=384, vocab_size=vocab_size, head_size=64, ctx_len=2048)


def tiny_config(vocab_size: int = 663) -> RWKVConfig:
    """A 2 x 64 model with 16-wide heads, for tests and smoke runs."""
    return RWKVConfig(n_layer=2, n_embd=64, vocab_size=vocab_size, head_size=16, ctx_len=256)


def small_config(vocab_size: int = 4000) -> RWKVConfig:
    """6 x 128 with 32-wide heads, sized for a couple of CPU hours of training: the first shipped model. Today's
    default is ``6x128`` (64-wide heads, the same size), which llama.cpp's WKV7 kernel runs on AVX-512 CPUs too."""
    return RWKVConfig(n_layer=6, n_embd=128, vocab_size=vocab_size, head_size=32, ctx_len=2048)


def sized_config(n_layer: int, n_embd: int, vocab_size: int = 4000) -> RWKVConfig:
    """``n_layer`` x ``n_embd`` with 64-wide heads (what llama.cpp's WKV7 kernel needs on AVX-512 CPUs)."""
    return RWKVConfig(n_layer=n_layer, n_embd=n_embd, vocab_size=vocab_size, head_size=64, ctx_len=2048)


class _Presets(dict):
    """The named presets, and any ``LxC`` (``L`` layers x ``C`` wide, 64-wide heads), e.g. ``6x192``."""

    _SIZE = re.compile(r"(\d+)x(\d+)")

    def __missing__(self, name: str):
        match = self._SIZE.fullmatch(str(name))
        if not match or int(match[2]) % 64 or int(match[1]) < 1:
            raise KeyError(name)
        return partial(sized_config, int(match[1]), int(match[2]))

    def __contains__(self, name) -> bool:
        try:
            self[name]
        except KeyError:
            return False
        return True


PRESETS = _Presets(paper=paper_config, small=small_config, tiny=tiny_config)
