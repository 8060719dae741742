"""llama.cpp's serialised recurrent state of one sequence, to and from :class:`RWKVState`.

``llama_state_seq_get_data`` on an RWKV-7 context writes (``llama_memory_recurrent::state_write``):

    u32 magic 0xaf143cd8, i32 seq id | u32 cells (1) | i32 pos, u32 0 | u32 s_trans (0), u32 n_layer
    per layer: i32 type (0 = f32), u64 row bytes, [att_shift C | ffn_shift C]
    per layer: i32 type, u64 row bytes, wkv [H, N, N] (row = value channel, column = key channel)

which is the order of our state tensors. Packing is how a tuned style (an initial state) reaches llama.cpp;
unpacking lets the tests compare llama.cpp's state with ours.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.model import RWKVConfig, RWKVState

_F32 = 0  # GGML_TYPE_F32
_MAGIC = 0xAF143CD8  # llama_context's io_magic
_HEADER = struct.Struct("<IiIiIII")


def pack(config: RWKVConfig, state: RWKVState, pos: int) -> bytes:
    """One sequence's bytes from a batch-1 state; the sequence's last position is ``pos``."""
    if state.batch != 1:
        raise ValueError(f"pack takes one stream, got {state.batch}")
    L, C, H, N = config.n_layer, config.n_embd, config.n_head, config.head_size
    parts = [_HEADER.pack(_MAGIC, 0, 1, pos, 0, 0, L)]
    shift = torch.cat([state.att_shift[:, 0], state.ffn_shift[:, 0]], dim=1).detach().float().numpy()  # [L, 2C]
    for row in shift:
        parts += [struct.pack("<iQ", _F32, 2 * C * 4), row.astype("<f4").tobytes()]
    wkv = state.wkv[:, 0].detach().float().reshape(L, H * N * N).numpy()
    for row in wkv:
        parts += [struct.pack("<iQ", _F32, H * N * N * 4), row.astype("<f4").tobytes()]
    return b"".join(parts)


def unpack(config: RWKVConfig, blob: bytes) -> RWKVState:
    """A batch-1 state from one sequence's bytes (the format above, checked as it is read)."""
    L, C, H, N = config.n_layer, config.n_embd, config.n_head, config.head_size
    magic, _seq, cells, _pos, n_seq, trans, layers = _HEADER.unpack_from(blob)
    if (magic, cells, n_seq, trans, layers) != (_MAGIC, 1, 0, 0, L):
        raise MidiRwkvError(f"unexpected llama.cpp state header {(hex(magic), cells, n_seq, trans, layers)}")
    offset, rows = _HEADER.size, []
    for size in [2 * C] * L + [H * N * N] * L:
        kind, nbytes = struct.unpack_from("<iQ", blob, offset)
        if kind != _F32 or nbytes != size * 4:
            raise MidiRwkvError(f"unexpected llama.cpp state row (type {kind}, {nbytes} bytes, expected {size * 4})")
        rows.append(np.frombuffer(blob, "<f4", size, offset + 12))
        offset += 12 + nbytes
    if offset != len(blob):
        raise MidiRwkvError(f"llama.cpp state has {len(blob) - offset} unexpected trailing bytes")
    shift = torch.from_numpy(np.stack(rows[:L]).copy())
    wkv = torch.from_numpy(np.stack(rows[L:]).copy()).reshape(L, 1, H, N, N)
    return RWKVState(shift[:, None, :C].contiguous(), shift[:, None, C:].contiguous(), wkv)
