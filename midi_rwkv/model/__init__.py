"""RWKV-7 (x070): config, model, initialisation, checkpoints, WKV kernels."""

from midi_rwkv.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from midi_rwkv.model.config import PRESETS, RWKVConfig, paper_config, tiny_config
from midi_rwkv.model.init import init_weights
from midi_rwkv.model.rwkv7 import RWKV7, RWKVState

__all__ = [
    "CheckpointError", "PRESETS", "RWKV7", "RWKVConfig", "RWKVState", "init_weights", "load_checkpoint",
    "paper_config", "save_checkpoint", "tiny_config",
]
