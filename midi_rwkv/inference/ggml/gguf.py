"""A model as GGUF for llama.cpp's ``rwkv7`` architecture (what ``convert_hf_to_gguf.py`` writes).

Our parameters carry RWKV-LM's names; llama.cpp's differ and are laid out for its graph:
the six token-shift mixes are fused into one [6, 1, 1, C] tensor, the LoRA matrices are
transposed, ``r_k`` is flattened, and ln0 of block 0 is the "token embedding norm". There is
no text tokenizer: ``no_vocab`` with a vocabulary size makes llama.cpp accept raw ids.

Layer 0 never uses its value-residual LoRA (its value *is* the residual), but llama.cpp loads
v0/v1/v2 there with the in-context-rate (a) LoRA's shapes, so we write a0/a1/a2 under those
names, as the reference converter does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write
from midi_rwkv.model import RWKV7, RWKVConfig
from midi_rwkv.tokenizer.sequences import stored_layout

ARCH = "rwkv7"
CONFIG_KEY = "midi_rwkv.config"  # our RWKVConfig as JSON, so a GGUF file is self-describing
LAYOUT_KEY = "midi_rwkv.layout"  # the sequence layout the model was trained with (tokenizer.sequences.LAYOUTS)
DTYPES = ("f32", "f16")
_LERPS = ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")  # the order of llama.cpp's fused lerp
_LORAS = ("w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2")  # stored [in, out]; ggml wants them transposed
_LINEAR = {"receptance": "time_mix_receptance", "key": "time_mix_key", "value": "time_mix_value",
           "output": "time_mix_output"}


def gguf_tensors(model: RWKV7) -> dict[str, np.ndarray]:
    """Every tensor under its llama.cpp name, float32, in the shape llama.cpp loads."""
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out = {
        "token_embd.weight": sd["emb.weight"],
        "token_embd_norm.weight": sd["blocks.0.ln0.weight"],
        "token_embd_norm.bias": sd["blocks.0.ln0.bias"],
        "output_norm.weight": sd["ln_out.weight"],
        "output_norm.bias": sd["ln_out.bias"],
        "output.weight": sd["head.weight"],
    }
    for i in range(model.config.n_layer):
        p, b = f"blocks.{i}.", f"blk.{i}."
        for ours, theirs in (("ln1", "attn_norm"), ("ln2", "attn_norm_2")):
            out[f"{b}{theirs}.weight"], out[f"{b}{theirs}.bias"] = sd[f"{p}{ours}.weight"], sd[f"{p}{ours}.bias"]
        out[f"{b}time_mix_lerp_fused.weight"] = torch.stack([sd[f"{p}att.{n}"] for n in _LERPS])  # [6, 1, 1, C]
        for name in ("w0", "a0", "v0", "k_k", "k_a"):
            out[f"{b}time_mix_{name}.weight"] = sd[f"{p}att.{name}"].flatten()
        for name in _LORAS:
            out[f"{b}time_mix_{name}.weight"] = sd[f"{p}att.{name}"].T.contiguous()
        if i == 0:  # unused, but loaded with the a-LoRA's shapes
            for v, a in (("v0", "a0"), ("v1", "a1"), ("v2", "a2")):
                out[f"{b}time_mix_{v}.weight"] = out[f"{b}time_mix_{a}.weight"]
        out[f"{b}time_mix_r_k.weight"] = sd[f"{p}att.r_k"].flatten()
        for ours, theirs in _LINEAR.items():
            out[f"{b}{theirs}.weight"] = sd[f"{p}att.{ours}.weight"]
        out[f"{b}time_mix_ln.weight"], out[f"{b}time_mix_ln.bias"] = sd[f"{p}att.ln_x.weight"], sd[f"{p}att.ln_x.bias"]
        out[f"{b}channel_mix_lerp_k.weight"] = sd[f"{p}ffn.x_k"]  # [1, 1, C]
        out[f"{b}channel_mix_key.weight"] = sd[f"{p}ffn.key.weight"]
        out[f"{b}channel_mix_value.weight"] = sd[f"{p}ffn.value.weight"]
    return {name: t.numpy() for name, t in out.items()}


def _keeps_f32(name: str, array: np.ndarray) -> bool:
    """What the reference converter keeps in f32 under f16: vectors, norms, the decay LoRA and the lerps."""
    return array.ndim <= 1 or "norm" in name or any(s in name for s in ("time_mix_w1", "time_mix_w2", "lerp"))


def export_gguf(model: RWKV7, path: str | Path, dtype: str = "f16", layout: str = "file-order") -> Path:
    """Write ``model`` as a GGUF file (atomically). ``dtype``: f32, or f16 for the matrices; ``layout``: the
    sequence layout it was trained with."""
    if dtype not in DTYPES:
        raise MidiRwkvError(f"GGUF dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    import gguf  # a requirement; imported here because it adds 0.2 s to every command's start

    c = model.config
    tensors = gguf_tensors(model)

    def write(tmp: str) -> None:
        w = gguf.GGUFWriter(tmp, ARCH)
        w.add_name("midi-rwkv")
        w.add_context_length(1048576)  # RWKV is not context-limited; llama.cpp wants a number
        w.add_embedding_length(c.n_embd)
        w.add_block_count(c.n_layer)
        w.add_layer_norm_eps(1e-5)
        w.add_wkv_head_size(c.head_size)
        w.add_decay_lora_rank(c.decay_lora)
        w.add_iclr_lora_rank(c.aaa_lora)
        w.add_value_residual_mix_lora_rank(c.mv_lora)
        w.add_gate_lora_rank(c.gate_lora)
        w.add_feed_forward_length(c.dim_ffn)
        w.add_token_shift_count(2)
        w.add_head_count(0)  # required by llama.cpp, unused
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        w.add_tokenizer_model("no_vocab")
        w.add_vocab_size(c.vocab_size)
        w.add_string(CONFIG_KEY, json.dumps(c.to_dict()))
        w.add_string(LAYOUT_KEY, layout)
        for name, array in tensors.items():
            half = dtype == "f16" and not _keeps_f32(name, array)
            w.add_tensor(name, array.astype(np.float16 if half else np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    return atomic_write(path, write)


def read_config(path: str | Path) -> tuple[RWKVConfig, str]:
    """The RWKVConfig stored in a GGUF file written by :func:`export_gguf`, and its dtype (f32 or f16)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # noqa: BLE001 (the reader fails with ValueError, struct.error, OSError, ...)
        raise MidiRwkvError(f"{path}: not a readable GGUF file ({str(err).splitlines()[0]})") from None
    field = reader.get_field(CONFIG_KEY)
    if field is None:
        raise MidiRwkvError(f"{path}: not a midi-rwkv GGUF (no {CONFIG_KEY}); export it with 'midi-rwkv export-gguf'")
    file_type = reader.get_field("general.file_type")
    dtype = "f16" if file_type is not None and file_type.contents() == gguf.LlamaFileType.MOSTLY_F16 else "f32"
    return RWKVConfig.from_dict(json.loads(field.contents())), dtype


def read_layout(path: str | Path) -> str:
    """The sequence layout stored in a GGUF file; file-order in files from before layouts."""
    import gguf

    field = gguf.GGUFReader(str(path)).get_field(LAYOUT_KEY)
    return stored_layout(field.contents() if field is not None else "file-order", path, MidiRwkvError)
