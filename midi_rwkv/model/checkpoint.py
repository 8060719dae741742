"""Checkpoints: a plain RWKV-LM-compatible state dict (``.pth``) plus a JSON sidecar (``.json``).

The sidecar holds the model config and the tokenizer vocabulary size. A ``.pth`` without a sidecar
(e.g. from RWKV-LM or the original release) still loads: its config is read off the tensor shapes.
Loading always uses ``torch.load(..., weights_only=True)`` and strict keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write, atomic_write_json
from midi_rwkv.model.config import RWKVConfig
from midi_rwkv.model.rwkv7 import RWKV7

FORMAT = "midi-rwkv/1"


class CheckpointError(MidiRwkvError):
    """A checkpoint is missing, unreadable, or does not fit the model or the tokenizer."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(model: RWKV7, path: str | Path, dtype: torch.dtype | None = None, extra: dict | None = None) -> Path:
    """Write the weights (optionally cast, e.g. to bf16) and the sidecar, each atomically."""
    path = Path(path)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "model": model.config.to_dict(), "dtype": str(dtype or next(model.parameters()).dtype).removeprefix("torch."), **(extra or {})}
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write_json(sidecar_path(path), meta)
    return path


def infer_config(state: dict[str, torch.Tensor]) -> RWKVConfig:
    """The config of an RWKV-LM x070 state dict, read off its tensor shapes."""
    try:
        vocab_size, n_embd = state["emb.weight"].shape
        n_layer = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        n_head, head_size = state["blocks.0.att.r_k"].shape
        return RWKVConfig(
            n_layer=n_layer, n_embd=n_embd, vocab_size=vocab_size, head_size=head_size,
            dim_ffn=state["blocks.0.ffn.key.weight"].shape[0],
            decay_lora=state["blocks.0.att.w1"].shape[1], aaa_lora=state["blocks.0.att.a1"].shape[1],
            mv_lora=state["blocks.0.att.v1"].shape[1], gate_lora=state["blocks.0.att.g1"].shape[1],
        )
    except (KeyError, ValueError, IndexError) as err:
        raise CheckpointError(f"not an RWKV-7 (x070) state dict: {err}") from None


def weights_sha256(model: RWKV7, dtype: torch.dtype = torch.float32) -> str:
    """sha256 (hex) of every parameter's name and bytes, cast to ``dtype`` first."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to(dtype).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_vocab(path: str | Path, config: RWKVConfig, vocab_size: int) -> None:
    """The model at ``path`` must have the tokenizer's vocabulary size (any model file: .pth or .gguf)."""
    if vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{path}: the model has a vocabulary of {config.vocab_size} tokens but the tokenizer has {vocab_size}"
        )


def load_checkpoint(path: str | Path, vocab_size: int | None = None, map_location="cpu") -> RWKV7:
    """Load a model; ``vocab_size`` (the tokenizer's) must match the model's when given.

    Raises:
        CheckpointError: missing or unreadable file, wrong keys or shapes, or a vocabulary mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("_forward_module."): v for k, v in state.items()}
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            config = RWKVConfig.from_dict(json.loads(sidecar.read_text())["model"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{sidecar}: malformed config sidecar ({err})") from None
    else:
        config = infer_config(state)
    if vocab_size is not None:
        check_vocab(path, config, vocab_size)
    model = RWKV7(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the config ({str(err).splitlines()[0]} ...)") from None
    return model.to(next(iter(state.values())).dtype)


def default_tokenizer(model_path: Path) -> Path:
    """``midi_rwkv.tokenizer.json`` beside ``midi_rwkv.pth``, else the run folder's ``tokenizer.json``."""
    own = model_path.with_name(f"{model_path.stem}.tokenizer.json")
    return own if own.is_file() else model_path.with_name("tokenizer.json")
