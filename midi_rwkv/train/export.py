"""Export any checkpoint of a run as a model (``midi-rwkv export RUN [--step N]``).

Training exports ``model.pth`` only when the run completes; this takes an intermediate (or the last)
``checkpoints/step-*.ckpt`` instead, e.g. to listen to a run in progress or to keep an earlier step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.model import RWKV7
from midi_rwkv.train.pretrain import export_model, last_checkpoint, model_config


def export(run: Path, step: int | None = None, output: Path | None = None) -> Path:
    """Write ``output`` (default RUN/model-step-N.pth) + sidecar from a run's checkpoint at ``step``
    (default: the last).
    """
    last, last_step = last_checkpoint(run / "checkpoints")
    if not (run / "config.json").is_file() or last is None:
        raise MidiRwkvError(f"{run}: not a training run with checkpoints")
    config = json.loads((run / "config.json").read_text())
    step = last_step if step is None else step
    ckpt = run / "checkpoints" / f"step-{step:07d}.ckpt"
    if not ckpt.is_file():
        raise MidiRwkvError(f"{ckpt}: no checkpoint at step {step}")
    tokenizer_file = run / "tokenizer.json"  # training writes it when it starts
    if not tokenizer_file.is_file():
        raise MidiRwkvError(f"{run}: no tokenizer.json (a run from an older midi-rwkv: copy its tokenizer there)")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    vocab_size = weights["emb.weight"].shape[0]  # the tokenizer's size, as the run was built
    model = RWKV7(model_config(config["preset"], config["ctx_len"], vocab_size))
    model.load_state_dict(weights)
    output = output or run / f"model-step-{step}.pth"
    return export_model(model, output, lambda path: shutil.copyfile(tokenizer_file, path),
                        output.with_name(f"{output.stem}.tokenizer.json"), step, config["data"],
                        config.get("layout", "file-order"))  # runs from before layouts trained in file order
