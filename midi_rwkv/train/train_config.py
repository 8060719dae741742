"""The settings of a training run (no Lightning import here: the command line is built from them)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from midi_rwkv.model import PRESETS
from midi_rwkv.settings import require, setting
from midi_rwkv.tokenizer.examples import ExampleConfig
from midi_rwkv.tokenizer.sequences import LAYOUTS


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the output folder."""

    out: str = setting(help="output folder: config.json, origin.json, manifest.json, checkpoints/, loss.csv, loss.png, "
                       "model.pth")
    data: list[str] = setting(
        help="corpus, repeatable: pop909:PATH, folder:PATH (or a bare folder), gigamidi:NAME_OR_PARQUET[::SUBSET]",
        factory=list, metavar="CORPUS")
    tokenizer: str | None = setting(None, "tokenizer JSON (default: the paper's 663 base tokens, no BPE)")
    preset: str = setting("tiny", "model size: tiny, small (6 x 128, head 32), paper (12 x 384, 35.1 M parameters), "
                          "or LxC, L layers x C wide with 64-wide heads (e.g. 6x192)")
    init: str | None = setting(None, "start from these weights (.pth) instead of the paper's initialisation")
    resume_from: str | None = setting(
        None, "continue a lineage folder (midi-rwkv save-lineage, e.g. lineage/NAME) on any machine: its weights, a "
        "fresh optimiser warmed up over --warmup-steps, its cosine schedule from its step on; the settings it "
        "recorded (data, preset, layout, schedule, seed, examples) are the defaults", metavar="LINEAGE")
    ctx_len: int = setting(2048, "tokens per training sequence")
    batch_size: int = setting(12, "sequences per step (per device)")
    steps: int = setting(1000, "optimiser steps for the whole run (the learning-rate cosine spans them)")
    lr_init: float = setting(1e-4, "peak learning rate (after warm-up)")
    lr_final: float = setting(1e-5, "learning rate at the last step")
    warmup_steps: int = setting(10, "linear warm-up steps (with --resume-from: the fresh optimiser's)")
    weight_decay: float = setting(0.1, "AdamW weight decay on 2-D weight matrices")
    grad_clip: float = setting(1.0, "gradient norm clipping (not with DeepSpeed)")
    val_every: int = setting(200, "validate every this many steps")
    val_batches: int = setting(8, "validation batches each time")
    ckpt_every: int = setting(500, "write a checkpoint every this many steps (all are kept)")
    accelerator: str = setting("auto", "where to train", choices=("auto", "cpu", "gpu", "cuda"))
    precision: str = setting("auto", "auto: bf16-mixed on a GPU and on a CPU with native bf16 (avx512_bf16 or "
                             "amx_bf16: faster there at the same loss, bench/train.py), else 32-true",
                             choices=("auto", "32-true", "bf16-mixed"))
    devices: int = setting(1, "devices per node")
    nodes: int = setting(1, "nodes")
    strategy: str = setting("auto", "multi-device strategy", choices=("auto", "ddp", "deepspeed_stage_2"))
    grad_checkpointing: bool = setting(False, "recompute activations in backward to save memory")
    workers: int = setting(1, "DataLoader worker processes")
    length_groups: int = setting(8, "sort the examples of this many steps by length and batch neighbours together, "
                                 "so that batches carry less padding (1: off; docs/training.md, Training speed)")
    threads: int = setting(0, "CPU threads for the model (0: PyTorch's default, one per core). On a CPU shared with "
                           "any other busy process, 1: two threads wait on each other at every operation "
                           "(docs/training.md, Training speed)")
    seed: int = setting(0, "random seed (data order, examples, initialisation, splits)")
    cache: str | None = setting(None, "folder for the prefilter cache (default: OUT/cache)")
    layout: str = setting("target-last", "where a bar-infill example writes the infilled track: after the other "
                          "tracks, next to the bars to fill (target-last), or in the file's order (file-order, the "
                          "paper's); the model keeps it and infills with it", choices=LAYOUTS)
    examples: dict = setting(help="JSON object of example-builder overrides, e.g. '{\"bar_infill_ratio\": 1.0}'",
                             factory=dict)

    def __post_init__(self):
        require(bool(self.data), "give at least one corpus (--data)")
        require(self.preset in PRESETS,
                f"unknown preset '{self.preset}': choose from {', '.join(PRESETS)} or LxC (C a multiple of 64)")
        for name in ("ctx_len", "batch_size", "steps", "val_every", "val_batches", "devices", "nodes", "length_groups"):
            require(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be 1 or more")
        for name in ("warmup_steps", "ckpt_every", "workers", "threads", "weight_decay", "grad_clip"):
            require(getattr(self, name) >= 0, f"--{name.replace('_', '-')} must be 0 or more")
        require(0 < self.lr_final <= self.lr_init, "learning rates need 0 < --lr-final <= --lr-init")
        require(self.strategy in ("auto", "ddp") or self.strategy.startswith("deepspeed"),
                f"unknown strategy '{self.strategy}': use auto, ddp or deepspeed_stage_2")
        valid = {f.name for f in fields(ExampleConfig)}
        require(set(self.examples) <= valid, f"--examples: unknown keys {sorted(set(self.examples) - valid)}")
        require("layout" not in self.examples, "give the layout with --layout, not in --examples")
        require(not (self.init and self.resume_from), "--init and --resume-from both give the starting weights: "
                "choose one")
