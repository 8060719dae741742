"""Adapters on a frozen base model: a tuned initial state, or LoRA on the projection matrices.

Each is saved as safetensors (only what was trained) plus a JSON file naming the base model by a
fingerprint of its weights (and, when saved from a file, that file's name and the first 12 hex digits of its
sha256); loading onto another base model is refused with one line that names both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write, atomic_write_json, file_sha256
from midi_rwkv.model import RWKV7, RWKVState
from midi_rwkv.model.checkpoint import weights_sha256

LORA_TARGETS = ("att.receptance", "att.key", "att.value", "att.output", "ffn.key", "ffn.value")


class AdapterError(MidiRwkvError):
    """An adapter file is missing, malformed, or was trained on another base model."""


def fingerprint(model: RWKV7) -> str:
    """sha256 of the base weights rounded to bf16 (so fp32 and bf16 copies of one model agree)."""
    return weights_sha256(model, torch.bfloat16)[:16]


class StateAdapter(nn.Module):
    """The tuned initial WKV state of every layer, [L, H, N, N] (token-shift states stay zero)."""

    kind = "state"

    def __init__(self, model: RWKV7):
        super().__init__()
        c = model.config
        self.config = c
        self.wkv = nn.Parameter(torch.zeros(c.n_layer, c.n_head, c.head_size, c.head_size))

    def initial_state(self, batch: int) -> RWKVState:
        zeros = RWKVState.zeros(self.config, batch, device=self.wkv.device)
        return RWKVState(zeros.att_shift, zeros.ffn_shift, self.wkv[:, None].expand(-1, batch, -1, -1, -1))

    def forward(self, model: RWKV7, idx: torch.Tensor) -> torch.Tensor:
        return model(idx, self.initial_state(idx.shape[0]))[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"wkv": self.wkv.detach().float().contiguous()}

    def options(self) -> dict:
        return {}


class LoRA(nn.Module):
    """Low-rank updates W + (alpha / r) B A on the projection matrices, applied by forward hooks.

    Hooks keep the base model's parameter names (and checkpoints) unchanged; :meth:`merge` folds
    the update into the weights for inference at no extra cost, :meth:`unmerge` takes it out again.
    """

    kind = "lora"

    def __init__(self, model: RWKV7, rank: int = 4, alpha: float = 4.0, targets: tuple[str, ...] = LORA_TARGETS):
        super().__init__()
        if rank <= 0:
            raise AdapterError(f"LoRA rank must be positive, got {rank}")
        self.rank, self.alpha, self.targets = rank, alpha, targets
        self.scale = alpha / rank
        self.A, self.B = nn.ParameterDict(), nn.ParameterDict()
        self.modules_ = {}
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and name.endswith(targets):
                key = name.replace(".", "__")
                self.A[key] = nn.Parameter(torch.empty(rank, module.in_features))
                nn.init.kaiming_uniform_(self.A[key], a=math.sqrt(5))
                self.B[key] = nn.Parameter(torch.zeros(module.out_features, rank))
                self.modules_[key] = module
        self._hooks = []
        self.merged = False

    def attach(self) -> "LoRA":
        self.detach()
        for key, module in self.modules_.items():

            def hook(mod, inputs, out, key=key):
                return out + self.scale * (inputs[0] @ self.A[key].t().to(out.dtype)) @ self.B[key].t().to(out.dtype)

            self._hooks.append(module.register_forward_hook(hook))
        return self

    def detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @torch.no_grad()
    def merge(self) -> None:
        """W += (alpha / r) B A in every target, and stop the hooks."""
        self.detach()
        for key, module in self.modules_.items():
            module.weight += (self.scale * self.B[key] @ self.A[key]).to(module.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        for key, module in self.modules_.items():
            module.weight -= (self.scale * self.B[key] @ self.A[key]).to(module.weight.dtype)
        self.merged = False

    def forward(self, model: RWKV7, idx: torch.Tensor) -> torch.Tensor:
        return model(idx)[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"{k}.A": v.detach().float().contiguous() for k, v in self.A.items()}
        out.update({f"{k}.B": v.detach().float().contiguous() for k, v in self.B.items()})
        return out

    def options(self) -> dict:
        return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets)}


def trainable_parameters(adapter: nn.Module) -> int:
    return sum(p.numel() for p in adapter.parameters())


def base_record(model: RWKV7, base_path: str | Path | None = None) -> dict:
    """What an adapter file records of its base model: the weights' fingerprint and config, and (given the file it
    was loaded from) the file's name and the first 12 hex digits of its sha256 (the id the documents use)."""
    record = {"fingerprint": fingerprint(model), "config": model.config.to_dict()}
    if base_path is not None:
        record |= {"file": Path(base_path).name, "sha256": file_sha256(base_path)[:12]}
    return record


def _describe(record: dict) -> str:
    if not record.get("fingerprint"):
        return "the file records no base model"
    weights = f"weights {record['fingerprint']}"
    return f"{record['sha256']} ({record.get('file')}, {weights})" if record.get("sha256") else weights


def save_adapter(
    adapter: StateAdapter | LoRA, model: RWKV7, path: str | Path, extra: dict | None = None,
    base_path: str | Path | None = None,
) -> Path:
    """``path`` (safetensors) and ``path`` with ``.json`` (kind, options, base model: see :func:`base_record`),
    atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: save_file(adapter.tensors(), tmp))
    meta = {
        "kind": adapter.kind,
        **adapter.options(),
        "base_model": base_record(model, base_path),
        "trainable_parameters": trainable_parameters(adapter),
        **(extra or {}),
    }
    atomic_write_json(path.with_suffix(".json"), meta)
    return path


def load_adapter(path: str | Path, model: RWKV7) -> StateAdapter | LoRA:
    """Load an adapter for ``model``; raises AdapterError when it was tuned on another base model."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise AdapterError(f"adapter not found: {path} (and its {sidecar.name})")
    try:
        meta = json.loads(sidecar.read_text())
        tensors = load_file(str(path))
    except Exception as err:
        raise AdapterError(f"{path}: not a readable adapter ({str(err).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise AdapterError(f"{sidecar}: not an adapter's JSON (expected an object)")
    recorded = meta.get("base_model") or {}
    if recorded.get("fingerprint") != fingerprint(model):
        raise AdapterError(
            f"{path} was tuned on another base model: {_describe(recorded)}, not this one (weights "
            f"{fingerprint(model)}); tune it again with --model set to this model"
        )
    if meta.get("kind") == "state":
        adapter = StateAdapter(model)
    elif meta.get("kind") == "lora":
        adapter = LoRA(model, meta["rank"], meta["alpha"], tuple(meta["targets"]))
    else:
        raise AdapterError(f"{sidecar}: unknown adapter kind {meta.get('kind')!r}")
    try:
        with torch.no_grad():
            for name, value in adapter.tensors().items():
                if tensors[name].shape != value.shape:
                    raise KeyError(name)
            if isinstance(adapter, StateAdapter):
                adapter.wkv.copy_(tensors["wkv"])
            else:
                for key in adapter.A:
                    adapter.A[key].copy_(tensors[f"{key}.A"])
                    adapter.B[key].copy_(tensors[f"{key}.B"])
    except KeyError as err:
        raise AdapterError(f"{path}: tensor {err} is missing or has the wrong shape for this model") from None
    return adapter


def merge_lora(path: str | Path, model: RWKV7) -> LoRA:
    """Fold the LoRA at ``path`` into ``model``'s weights, after checking it against them."""
    adapter = load_adapter(path, model)
    if not isinstance(adapter, LoRA):
        raise AdapterError(f"{path} is a {adapter.kind} adapter, not a LoRA (a tuned state goes to --state)")
    adapter.merge()  # no cost per token
    return adapter
