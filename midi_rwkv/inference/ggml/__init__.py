"""The GGML engine: our model exported to GGUF and run by llama.cpp, with our sampler and controls.

Optional: ``pip install '.[ggml]'`` (llama-cpp-python builds llama.cpp from source; see the
docs/inference.md for a cached, faster build). Without it, everything runs on the PyTorch engine.
"""

from __future__ import annotations

from pathlib import Path

from midi_rwkv.io import cache_dir
from midi_rwkv.model import RWKV7, RWKVState
from midi_rwkv.model.checkpoint import weights_sha256

ENGINES = ("torch", "ggml", "ggml-f32")  # ggml = f16 matrices


def available() -> bool:
    """Whether llama-cpp-python is installed."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def choose_engine(requested: str, head_size: int) -> str:
    """``auto``: the GGML engine where it is installed and can run this head size, else PyTorch."""
    if requested != "auto":
        return requested
    if not available():
        return "torch"
    import llama_cpp

    from midi_rwkv.inference.ggml.engine import simd_block

    return "ggml" if head_size % simd_block(llama_cpp) == 0 else "torch"


def gguf_cache() -> Path:
    """Where exported GGUF files are kept: gguf/ in the package's cache (see midi_rwkv.io.cache_dir)."""
    return cache_dir() / "gguf"


def ggml_engine(model: RWKV7, engine: str = "ggml", threads: int = 1, initial_state: RWKVState | None = None,
                 layout: str = "file-order"):
    """The GGML engine for ``model``, exporting it to the GGUF cache the first time; ``layout``: the sequence layout
    the model was trained with, which the file records (cached files are keyed by it too)."""
    from midi_rwkv.inference.ggml.engine import GGMLEngine, require_llama
    from midi_rwkv.inference.ggml.gguf import export_gguf

    require_llama()  # before exporting anything
    dtype = "f32" if engine == "ggml-f32" else "f16"
    # keyed by the exact float32 weights: a merged LoRA changes the key, however small it is
    path = gguf_cache() / f"{weights_sha256(model)[:20]}.{layout}.{dtype}.gguf"
    if not path.is_file():
        export_gguf(model, path, dtype, layout)
    return GGMLEngine(path, threads=threads, initial_state=initial_state)
