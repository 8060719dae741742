"""Checkpoints: a plain RWKV-LM-compatible state dict (``.pth``) plus a JSON sidecar (``.json``).

The sidecar holds the model config, the tokenizer vocabulary size and the sequence layout the model was
trained with. A ``.pth`` without a sidecar (e.g. from RWKV-LM or the original release) still loads: its config is
read off the tensor shapes, its layout is the file's order.
Loading always uses ``torch.load(..., weights_only=True)`` and strict keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write, atomic_write_json
from midi_rwkv.model.config import RWKVConfig
from midi_rwkv.model.rwkv7 import RWKV7
from midi_rwkv.tokenizer.sequences import stored_layout

if TYPE_CHECKING:  # MidiTok only to open a model for inference: training from a compiled corpus runs without it
    from midi_rwkv.tokenizer import InfillTokenizer

FORMAT = "midi-rwkv/1"


class CheckpointError(MidiRwkvError):
    """A checkpoint is missing, unreadable, or does not fit the model or the tokenizer."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(
    model: RWKV7, path: str | Path, dtype: torch.dtype | None = None, extra: dict | None = None
) -> Path:
    """Write the weights (optionally cast, e.g. to bf16) and the sidecar, each atomically."""
    path = Path(path)
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    meta = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "dtype": str(dtype or next(model.parameters()).dtype).removeprefix("torch."),
        **(extra or {}),
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write_json(sidecar_path(path), meta)
    return path


def model_layout(path: str | Path) -> str:
    """The sequence layout the model at ``path`` was trained with (``tokenizer.sequences.LAYOUTS``): its sidecar's
    ``layout``; file-order without one (models from before layouts, the original release's)."""
    sidecar = sidecar_path(path)
    layout = json.loads(sidecar.read_text()).get("layout", "file-order") if sidecar.is_file() else "file-order"
    return stored_layout(layout, sidecar, CheckpointError)


def infer_config(state: dict[str, torch.Tensor]) -> RWKVConfig:
    """The config of an RWKV-LM x070 state dict, read off its tensor shapes."""
    try:
        vocab_size, n_embd = state["emb.weight"].shape
        n_layer = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        n_head, head_size = state["blocks.0.att.r_k"].shape
        return RWKVConfig(
            n_layer=n_layer,
            n_embd=n_embd,
            vocab_size=vocab_size,
            head_size=head_size,
            dim_ffn=state["blocks.0.ffn.key.weight"].shape[0],
            decay_lora=state["blocks.0.att.w1"].shape[1],
            aaa_lora=state["blocks.0.att.a1"].shape[1],
            mv_lora=state["blocks.0.att.v1"].shape[1],
            gate_lora=state["blocks.0.att.g1"].shape[1],
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


DEFAULT_MODEL_NAME = "midi_rwkv.pth"


def default_model_candidates() -> list[Path]:
    """Where the shipped model is looked for, in this order.

    1. ``$MIDI_RWKV_MODEL``;
    2. ``midi_rwkv.pth`` at the root of the source checkout the package was imported from (a clone,
       or ``pip install -e .``);
    3. ``share/midi-rwkv/midi_rwkv.pth`` under the installation prefix (``pip install .`` puts it there).
    """
    candidates = [Path(os.environ["MIDI_RWKV_MODEL"])] if os.environ.get("MIDI_RWKV_MODEL") else []
    candidates.append(Path(__file__).resolve().parents[2] / DEFAULT_MODEL_NAME)
    candidates.append(Path(sys.prefix) / "share" / "midi-rwkv" / DEFAULT_MODEL_NAME)
    return candidates


def resolve_model(path: str | Path | None = None) -> Path:
    """``path``, or the shipped model (see :func:`default_model_candidates`); an existing file, or a clear error."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no model at {path}: train one with scripts/train.sh and pass --model OUT/model.pth")
        return path
    for candidate in default_model_candidates():
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"no default model found (looked at {', '.join(map(str, default_model_candidates()))}): pass --model"
    )


def open_tokenizer(model_path: Path, tokenizer_path: str | Path | None = None) -> InfillTokenizer:
    """The tokenizer that goes with ``model_path``: ``tokenizer_path``, else the one beside the model."""
    path = Path(tokenizer_path) if tokenizer_path else default_tokenizer(model_path)
    if not path.is_file():
        raise CheckpointError(f"no tokenizer at {path}: pass --tokenizer")
    from midi_rwkv.tokenizer import InfillTokenizer

    return InfillTokenizer.load(path)


def open_model(
    model_path: str | Path | None = None, tokenizer_path: str | Path | None = None
) -> tuple[RWKV7, InfillTokenizer, Path]:
    """A model (float32) and its tokenizer, checked against each other; the default model when no path is given."""
    path = resolve_model(model_path)
    tokenizer = open_tokenizer(path, tokenizer_path)
    return load_checkpoint(path, vocab_size=tokenizer.vocab_size).float(), tokenizer, path
