"""One entry point for WKV7, choosing the CUDA, C++ CPU or PyTorch implementation.

    y, state = wkv7(r, w, k, v, a, b, state)        # all [B, T, H, N]; state [B, H, N, N]

Choice: CUDA tensors use the CUDA operator, CPU tensors the C++ operator; when a native operator
cannot be built, a warning says why (once) and the PyTorch reference is used. Tests force a
backend with ``backend=`` or the :func:`use_backend` context manager.
"""

from __future__ import annotations

import contextlib
import logging

from torch import Tensor

from midi_rwkv.model.kernels.build import KernelBuildError, load_cpu_op, load_cuda_op
from midi_rwkv.model.kernels.reference import wkv7_reference

log = logging.getLogger(__name__)
BACKENDS = ("auto", "cuda", "cpu", "torch")
_forced: list[str] = []
_unavailable: dict[str, str] = {}


@contextlib.contextmanager
def use_backend(name: str):
    """Force a backend inside a ``with`` block (``"auto"`` restores the automatic choice)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown WKV7 backend {name!r}; choose from {BACKENDS}")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def _available(name: str, head_size: int) -> bool:
    key = f"{name}:{head_size}" if name == "cuda" else name
    if key in _unavailable:
        return False
    try:
        load_cuda_op(head_size) if name == "cuda" else load_cpu_op()
        return True
    except KernelBuildError as err:
        _unavailable[key] = str(err)
        log.warning("WKV7 %s kernel unavailable, using the slower PyTorch reference: %s", name, err)
        return False


def resolve_backend(device_type: str, head_size: int, backend: str | None = None) -> str:
    """The backend that will run for tensors on ``device_type``."""
    name = backend or (_forced[-1] if _forced else "auto")
    if name not in BACKENDS:
        raise ValueError(f"unknown WKV7 backend {name!r}; choose from {BACKENDS}")
    if name == "auto":
        name = "cuda" if device_type == "cuda" else "cpu"
        return name if _available(name, head_size) else "torch"
    if name in ("cuda", "cpu") and (name == "cuda") != (device_type == "cuda"):
        raise ValueError(f"the {name} WKV7 backend cannot run on {device_type} tensors")
    if name != "torch" and not _available(name, head_size):
        raise KernelBuildError(f"WKV7 {name} backend requested but unavailable: {_unavailable.get(name, '')}")
    return name


def wkv7(
    r: Tensor,
    w: Tensor,
    k: Tensor,
    v: Tensor,
    a: Tensor,
    b: Tensor,
    state: Tensor | None = None,
    *,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """WKV7 over a sequence; see :func:`midi_rwkv.model.kernels.reference.wkv7_reference` for the maths."""
    name = resolve_backend(r.device.type, r.shape[-1], backend)
    if name == "cpu":
        from midi_rwkv.model.kernels.native import wkv7_cpu

        return wkv7_cpu(r, w, k, v, a, b, state)
    if name == "cuda":
        from midi_rwkv.model.kernels.native import wkv7_cuda

        return wkv7_cuda(r, w, k, v, a, b, state)
    return wkv7_reference(r, w, k, v, a, b, state)
