"""The GGML engine: a GGUF model run by llama.cpp (through llama-cpp-python's C API).

llama.cpp keeps one recurrent state per sequence id. A prompt is read into sequence 0; its
state leaves llama.cpp as bytes (``llama_state_seq_get_data``), which is what the generator's
prompt cache stores. Forking restores those bytes into sequence 0 and copies it to sequences
1..K-1 (llama.cpp copies a shared state on the first write), and each step decodes one batch
with one token for every stream still running. The generator's own sampler and control injection
run on the logits, exactly as with the PyTorch engine.

Threads: llama.cpp's threads meet at a barrier after every operation of the graph (hundreds per call) and
spin while they wait. When another program holds one of the cores, the thread that shares it is descheduled
for whole time slices and its partner spins through them, so two threads read a prompt several times slower
than one (docs/inference.md, "Why prompt reading speed varies"). The engine therefore runs more than one
thread only on CPUs that other programs leave free (:class:`FreeCores`), deciding afresh for every prompt and
every set of candidates.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.cores import core_meter, threads_to_run
from midi_rwkv.inference.ggml import state_blob
from midi_rwkv.inference.ggml.gguf import read_config
from midi_rwkv.model import RWKVState


def require_llama():
    """The llama_cpp module, or one clear error line saying how to install it."""
    try:
        import llama_cpp
    except ImportError:
        raise MidiRwkvError("the GGML engine needs llama-cpp-python: pip install '.[ggml]' (see README)") from None
    return llama_cpp


@dataclass(frozen=True)
class GGMLState:
    blob: bytes  # llama.cpp's serialised state of one sequence
    next_pos: int  # llama.cpp wants consecutive positions per sequence (RWKV itself ignores them)


_silence = None  # the log callback must outlive every context


def _quiet(llama_cpp) -> None:
    global _silence
    if _silence is None:
        _silence = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_silence, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()


def simd_block(llama_cpp) -> int:
    """Floats per step of ggml's SIMD loops (GGML_F32_STEP) in this build.

    Its WKV7 kernel assumes the head size is a multiple of it and silently reads past a smaller
    head (a 16-wide head gives wrong logits under AVX2), so the engine checks.
    """
    info = llama_cpp.llama_print_system_info().decode()

    def has(name: str) -> bool:
        return f"{name} = 1" in info

    if has("AVX512"):
        return 64
    if has("AVX") or has("AVX2"):
        return 32
    if has("SSE3") or has("NEON"):
        return 16
    return 1


class GGMLEngine:
    """A GGUF file from :func:`~midi_rwkv.inference.ggml.gguf.export_gguf`, on the CPU.

    ``threads``: at most this many llama.cpp threads (``threads_batch``, default the same, for batches of
    more than one token: prompts, and decoding several candidates). With ``share_cores`` (the default) each
    prompt and each set of candidates runs on no more threads than :class:`FreeCores` finds CPUs free, so a
    busy core costs a second thread nothing; ``share_cores=False`` always runs them all (as before).
    ``threads_used``: the thread counts for batches that it chose. bench/infill.py measures 1 and 2.
    """

    def __init__(self, path: str | Path, threads: int = 1, threads_batch: int | None = None,
                 initial_state: RWKVState | None = None, batch: int = 512, share_cores: bool = True):
        self.llama = require_llama()
        _quiet(self.llama)
        self.path = Path(path)
        self.config, dtype = read_config(self.path)
        self.name = f"GGML (llama.cpp, {dtype}, {threads} thread{'s' * (threads > 1)})"
        block = simd_block(self.llama)
        if self.config.head_size % block:
            raise MidiRwkvError(f"llama.cpp's CPU WKV7 kernel on this machine reads heads in blocks of {block} floats; "
                                f"this model's heads have {self.config.head_size} (use the PyTorch engine)")
        self.threads, self.threads_batch = threads, threads_batch or threads
        self.meter = core_meter(share_cores, max(self.threads, self.threads_batch))
        self.running = (self.threads, self.threads_batch)  # what llama.cpp runs now (see _share_cores)
        self.threads_used: set[int] = set()
        self.batch = batch
        params = self.llama.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = self.llama.llama_model_load_from_file(str(self.path).encode(), params)
        if not self.model:
            raise MidiRwkvError(f"{self.path}: llama.cpp could not load this GGUF file")
        self.ctx, self.n_seq = None, 0
        self._context(8)
        self.initial = None
        if initial_state is not None:
            self.initial = GGMLState(state_blob.pack(self.config, initial_state, pos=0), next_pos=1)

    def _context(self, n_seq: int) -> None:
        """(Re)create the context for ``n_seq`` streams: llama.cpp sizes its state memory per sequence."""
        if self.ctx is not None and n_seq <= self.n_seq:
            return
        self._free_context()
        params = self.llama.llama_context_default_params()
        params.n_ctx = self.batch * 4
        params.n_batch = params.n_ubatch = self.batch
        params.n_seq_max = n_seq
        params.n_threads, params.n_threads_batch = self.running
        params.no_perf = True
        self.ctx = self.llama.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise MidiRwkvError(f"llama.cpp could not create a context for {n_seq} streams")
        self.n_seq = n_seq
        self.memory = self.llama.llama_get_memory(self.ctx)
        self._batch = self.llama.llama_batch_init(max(self.batch, n_seq), 0, 1)

    def _free_context(self) -> None:
        if self.ctx is not None:
            self.llama.llama_batch_free(self._batch)
            self.llama.llama_free(self.ctx)
            self.ctx = None

    def close(self) -> None:
        """Free llama.cpp's memory (also done when the engine is garbage-collected)."""
        if getattr(self, "model", None):
            self._free_context()
            self.llama.llama_model_free(self.model)
            self.model = None

    def __del__(self):
        if not sys.is_finalizing():  # at exit llama_cpp may already be torn down; the OS frees the memory
            self.close()

    # ---- llama.cpp calls -------------------------------------------------------------

    def _share_cores(self) -> None:
        """Run on no more threads than there are CPUs other programs leave free (when share_cores)."""
        free = threads_to_run(self.meter, max(self.threads, self.threads_batch))
        running = (min(self.threads, free), min(self.threads_batch, free))
        if running != self.running:
            self.running = running
            self.llama.llama_set_n_threads(self.ctx, *running)
        self.threads_used.add(running[1])

    def decode(self, seqs: list[int], tokens: list[int], positions: list[int], logits_for: list[bool]) -> None:
        b = self._batch
        for i, (s, t, p, want) in enumerate(zip(seqs, tokens, positions, logits_for)):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, p, 1, want
            b.seq_id[i][0] = s
        b.n_tokens = len(tokens)
        code = self.llama.llama_decode(self.ctx, b)
        if code != 0:
            raise MidiRwkvError(f"llama.cpp decode failed (code {code})")

    def logits(self, i: int) -> Tensor:
        row = self.llama.llama_get_logits_ith(self.ctx, i)
        return torch.from_numpy(np.ctypeslib.as_array(row, shape=(self.config.vocab_size,)).copy())

    def save(self, seq: int, next_pos: int) -> GGMLState:
        size = self.llama.llama_state_seq_get_size(self.ctx, seq)
        buf = (ctypes.c_uint8 * size)()
        n = self.llama.llama_state_seq_get_data(self.ctx, buf, size, seq)
        return GGMLState(ctypes.string_at(buf, n), next_pos)  # bytes(buf[:n]) built a list: 8 ms a state

    def restore(self, state: GGMLState | None, seq: int = 0) -> int:
        """Empty every sequence, load ``state`` (None: the initial state) into ``seq``; the next position."""
        self.llama.llama_memory_clear(self.memory, True)
        state = state or self.initial
        if state is None:
            return 0
        buf = (ctypes.c_uint8 * len(state.blob)).from_buffer_copy(state.blob)
        if self.llama.llama_state_seq_set_data(self.ctx, buf, len(state.blob), seq) != len(state.blob):
            raise MidiRwkvError("llama.cpp refused a saved state (was it made by another model?)")
        return state.next_pos

    # ---- the Engine interface ----------------------------------------------------------

    def prefill(self, tokens: list[int], state: GGMLState | None) -> tuple[Tensor, GGMLState]:
        self._share_cores()
        pos = self.restore(state)
        for start in range(0, len(tokens), self.batch):
            chunk = tokens[start : start + self.batch]
            last = start + len(chunk) == len(tokens)
            self.decode([0] * len(chunk), chunk, list(range(pos + start, pos + start + len(chunk))),
                        [last and i == len(chunk) - 1 for i in range(len(chunk))])
        return self.logits(-1), self.save(0, pos + len(tokens))

    def fork(self, state: GGMLState, k: int) -> GGMLStreams:
        self._context(k)
        self._share_cores()
        pos = self.restore(state)
        for s in range(1, k):
            self.llama.llama_memory_seq_cp(self.memory, 0, s, -1, -1)
        return GGMLStreams(self, [pos] * k)

    def read_state(self, state: GGMLState) -> RWKVState:
        """A saved state as an :class:`RWKVState` of batch 1 (for tests and inspection)."""
        return state_blob.unpack(self.config, state.blob)


class GGMLStreams:
    def __init__(self, engine: GGMLEngine, positions: list[int]):
        self.engine, self.positions = engine, positions
        self.last = torch.zeros(len(positions), engine.config.vocab_size)

    def step(self, tokens: list[int | None]) -> Tensor:
        live = [i for i, t in enumerate(tokens) if t is not None]
        self.engine.decode(live, [tokens[i] for i in live], [self.positions[i] for i in live], [True] * len(live))
        for row, i in enumerate(live):
            self.positions[i] += 1
            self.last[i] = self.engine.logits(row)
        return self.last.clone()
