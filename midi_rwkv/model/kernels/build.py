"""Lazy building of the native WKV7 operators with ``torch.utils.cpp_extension`` and ninja.

Nothing is compiled at import. The first call to :func:`load_cpu_op` (or :func:`load_cuda_op`)
builds the operator into ``~/.cache/midi_rwkv/`` (``MIDI_RWKV_CACHE`` overrides) and later calls
reuse it. The CPU build uses ``-march=native``, so its cache key includes this machine's CPU flags.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import torch

from midi_rwkv.io import cache_dir

CSRC = Path(__file__).parent / "csrc"


class KernelBuildError(RuntimeError):
    """A native operator could not be built (no compiler, no nvcc, compile error)."""


def _cache_dir() -> Path:
    return cache_dir() / f"torch-{torch.__version__}"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _build(name: str, sources: list[Path], **kwargs) -> None:
    from torch.utils import cpp_extension

    build_dir = _cache_dir() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    # torch's own build lock is a plain file: a build killed half-way leaves it, and every later load waits for it
    # forever. Our lock is an flock, which the system releases when its holder dies; holding it, a torch lock we
    # find can only be such a leftover.
    with open(build_dir / ".midi_rwkv.lock", "w") as ours:
        fcntl.flock(ours, fcntl.LOCK_EX)
        (build_dir / "lock").unlink(missing_ok=True)
        if not any(build_dir.glob(f"{name}*.so")):
            print(f"building the native {name.split('_')[3].upper()} kernel once (about half a minute)...",
                  file=sys.stderr, flush=True)
        try:
            cpp_extension.load(
                name=name,
                sources=[str(s) for s in sources],
                build_directory=str(build_dir),
                is_python_module=False,
                verbose=False,
                **kwargs,
            )
        except Exception as err:  # compiler missing, ninja missing, compile error
            raise KernelBuildError(
                f"could not build {name}: {str(err).strip().splitlines()[-1] if str(err).strip() else err}"
            ) from err


@lru_cache(maxsize=1)
def load_cpu_op():
    """Build (once) and return ``torch.ops.midi_rwkv_wkv7_cpu``; raises KernelBuildError."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        raise KernelBuildError("no C++ compiler found (install g++ to build the fast CPU kernel)")
    source = CSRC / "wkv7_cpu.cpp"
    flags = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only"]
    # one build per source (its text and its path: ninja's build file names the path, so two checkouts sharing one
    # build would rebuild each other's), flags, CPU and Python environment (torch's headers live in the environment)
    name = f"midi_rwkv_wkv7_cpu_{_key(str(source), source.read_text(), ' '.join(flags), _cpu_flags(), torch.__file__)}"
    _build(name, [source], extra_cflags=flags)
    return torch.ops.midi_rwkv_wkv7_cpu


@lru_cache(maxsize=4)
def load_cuda_op(head_size: int):
    """Build (once per head size) and return ``torch.ops.midi_rwkv_wkv7_cuda``; raises KernelBuildError."""
    if not torch.cuda.is_available():
        raise KernelBuildError("CUDA is not available")
    sources = [CSRC / "wkv7_cuda.cu", CSRC / "wkv7_cuda_op.cpp"]
    flags = [
        "-res-usage",
        "--use_fast_math",
        "-O3",
        "-Xptxas -O3",
        "--extra-device-vectorization",
        f"-D_N_={head_size}",
        "-D_CHUNK_LEN_=16",
    ]
    texts = [part for s in sources for part in (str(s), s.read_text())]
    name = f"midi_rwkv_wkv7_cuda_{head_size}_{_key(*texts, ' '.join(flags), torch.__file__)}"
    _build(name, sources, extra_cuda_cflags=flags)
    return torch.ops.midi_rwkv_wkv7_cuda
