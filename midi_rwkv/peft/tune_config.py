"""The settings of a fine-tuning run (state tuning or LoRA).

``tune`` and ``tune-style`` share them and their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from midi_rwkv.data.splits import SPLIT_RATIOS
from midi_rwkv.settings import require, setting

METHODS = ("state", "lora")
DEFAULT_LR = {"state": 5e-2, "lora": 1e-3}


def _ratios(text: str) -> tuple[float, float, float]:
    return tuple(float(x) for x in text.split(","))


@dataclass
class TuneConfig:
    data: str = setting(help="corpus: pop909:PATH, folder:PATH, gigamidi:NAME_OR_PARQUET (split by piece)")
    out: str = setting(help="output folder: the adapter, split.json, report.json")
    model: str | None = setting(None, "base model .pth (default: the shipped midi_rwkv.pth)")
    tokenizer: str | None = setting(
        None, "tokenizer JSON (default: MODEL_STEM.tokenizer.json, else tokenizer.json, beside the model)"
    )
    method: str = setting("state", "what to train: the initial WKV state, or LoRA on every projection", choices=METHODS)
    rank: int = setting(4, "LoRA rank")
    alpha: float = setting(4.0, "LoRA alpha (the update is scaled by alpha / rank)")
    lr: float | None = setting(None, "learning rate, cosine to lr/10 (default: 5e-2 for state tuning, 1e-3 for LoRA)")
    steps: int = setting(200, "optimiser steps")
    batch_size: int = setting(4, "sequences per step")
    ctx_len: int = setting(1024, "tokens per training sequence")
    eval_batches: int = setting(8, "held-out batches for the loss before and after (and at each measurement)")
    eval_every: int = setting(25, "steps between measurements of the held-out loss; the adapter kept is the one at "
                              "the lowest (tune: on the validation pieces; tune-style: on the held-out pieces)")
    patience: int = setting(3, "stop after this many measurements in a row without a lower held-out loss "
                            "(0: run every step)")
    min_gain: float = setting(0.02, "the held-out loss must fall by more than this (nats per token) for the run to "
                              "count as generalised")
    hold_out: float = setting(0.2, "tune-style: share of your pieces held out to measure the style on (at least one; "
                              "a single piece holds out its last bars)")
    split_file: str | None = setting(None, 'tune: JSON file naming the pieces of each split, {"train": [ids], '
                                     '"validation": [ids], "test": [ids]} (default: the base model\'s own split by '
                                     'song, whose test songs midi-rwkv evaluate draws from)')
    split: tuple[float, float, float] = setting(
        SPLIT_RATIOS, "train, validation, test shares of the song split, as the base model and the evaluation split "
        "it (other shares test on songs the base trained on)", parse=_ratios, metavar="TRAIN,VAL,TEST"
    )
    seed: int = setting(0, "seed of the examples and the initialisation (the song split is the base model's, "
                        "whatever the seed)")
    limit: int | None = setting(None, "use at most this many pieces (quick experiments)")

    def __post_init__(self):
        require(self.method in METHODS, f"unknown method '{self.method}': choose from {', '.join(METHODS)}")
        for name in ("rank", "steps", "batch_size", "ctx_len", "eval_batches", "eval_every"):
            require(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be 1 or more")
        require(self.patience >= 0, "--patience must be 0 or more")
        require(self.min_gain >= 0, "--min-gain must be 0 or more")
        require(0 < self.hold_out < 1, f"--hold-out must be a share between 0 and 1, got {self.hold_out}")
        require(self.alpha > 0, "--alpha must be positive")
        require(self.lr is None or self.lr > 0, "--lr must be positive")
        require(self.limit is None or self.limit >= 1, "--limit must be 1 or more")
        self.split = tuple(self.split)
        require(
            len(self.split) == 3 and all(r >= 0 for r in self.split) and abs(sum(self.split) - 1) < 1e-6,
            f"--split needs three shares that add up to 1, got {self.split}",
        )

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]
