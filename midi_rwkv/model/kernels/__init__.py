"""WKV7 kernels: a PyTorch reference, a C++ CPU operator and a CUDA operator, behind one dispatch."""

from midi_rwkv.model.kernels.dispatch import resolve_backend, use_backend, wkv7
from midi_rwkv.model.kernels.reference import wkv7_reference

__all__ = ["resolve_backend", "use_backend", "wkv7", "wkv7_reference"]
