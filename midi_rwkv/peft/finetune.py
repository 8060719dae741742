"""Fine-tuning runs: on a corpus split by piece (``midi-rwkv tune``), or on a composer's folder (``tune-style``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from midi_rwkv.data.corpora import FolderCorpus, open_corpus
from midi_rwkv.data.prefilter import check_piece, prefilter
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write_json
from midi_rwkv.model import load_checkpoint, save_checkpoint
from midi_rwkv.model.checkpoint import default_tokenizer, model_layout, open_model, resolve_model
from midi_rwkv.peft.adapters import LoRA, StateAdapter, merge_lora, save_adapter, trainable_parameters
from midi_rwkv.peft.tune import evaluate, example_loader, tune
from midi_rwkv.peft.tune_config import TuneConfig


def merge_lora_checkpoint(base: str | Path | None, adapter_path: str | Path, out: str | Path) -> Path:
    """Write ``out`` (.pth + sidecar, bf16) = base weights (default: the shipped model) with the LoRA folded in;
    the tokenizer is copied beside it."""
    base = resolve_model(base)
    model = load_checkpoint(base).float()
    merge_lora(adapter_path, model)
    out = save_checkpoint(model, out, dtype=torch.bfloat16,
                          extra={"merged_lora": str(adapter_path), "base": str(base), "layout": model_layout(base)})
    tokenizer = default_tokenizer(base)
    if tokenizer.is_file() and tokenizer.resolve() != default_tokenizer(out).resolve():
        shutil.copyfile(tokenizer, out.with_name("tokenizer.json"))
    return out


def run(config: TuneConfig, progress: bool = True) -> dict:
    """Split the corpus by piece, measure the held-out loss, tune, measure again; save the adapter and a report."""
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, model_path = open_model(config.model, config.tokenizer)
    layout = model_layout(model_path)
    corpus = open_corpus(config.data)
    if config.limit:
        corpus.ids = corpus.ids[: config.limit]
    manifest = prefilter(
        corpus, tokenizer, out / "cache" / "manifest.json", seed=config.seed, ratios=config.split, progress=progress
    )
    split = {name: [corpus.ids[i] for i in ids] for name, ids in manifest.splits.items()}
    atomic_write_json(out / "split.json", {"corpus": corpus.name, "seed": config.seed, **split})
    print(
        f"split by song (seed {config.seed}): "
        + ", ".join(f"{k} {len(v)}" for k, v in split.items())
        + f" -> {out / 'split.json'}"
    )
    adapter = StateAdapter(model) if config.method == "state" else LoRA(model, config.rank, config.alpha).attach()
    lr = config.learning_rate
    train_ids, _, test = manifest.usable_splits()
    test_loader = example_loader(
        corpus, test, tokenizer, config.ctx_len, config.batch_size, config.eval_batches, config.seed + 7, layout
    )
    before = evaluate(model, None, test_loader)
    train_loader = example_loader(
        corpus, train_ids, tokenizer, config.ctx_len, config.batch_size, config.steps, config.seed, layout
    )
    history = tune(model, adapter, train_loader, lr, lr / 10, progress)
    after = evaluate(model, adapter, test_loader)
    report = {
        "method": config.method,
        "trainable_parameters": trainable_parameters(adapter),
        "lr": lr,
        "test_loss_before": round(before, 4),
        "test_loss_after": round(after, 4),
        **history,
        "config": asdict(config),
    }
    name = "state.safetensors" if config.method == "state" else f"lora_r{config.rank}.safetensors"
    save_adapter(adapter, model, out / name, extra={"report": {k: v for k, v in report.items() if k != "config"}})
    atomic_write_json(out / "report.json", report)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1))
    return report


def tune_style(config: TuneConfig, pieces: str | Path, output: str | Path, progress: bool = True) -> tuple[Path, dict]:
    """A composer's style: state tuning on every usable piece of a folder (short pieces welcome), loss measured on them.

    Only the initial state is trained, so the style file is small and costs nothing at generation time.
    """
    model, tokenizer, model_path = open_model(config.model, config.tokenizer)
    layout = model_layout(model_path)
    corpus = FolderCorpus(pieces)
    usable = []
    for i in range(len(corpus)):
        reason = check_piece(corpus, i, tokenizer, min_bars=1, min_notes=0)
        if reason:
            print(f"skipping {corpus.ids[i]}: {reason}")
        else:
            usable.append(i)
    if not usable:
        raise MidiRwkvError(f"no usable MIDI file in {pieces}")
    torch.manual_seed(config.seed)
    adapter = StateAdapter(model)
    measure = example_loader(corpus, usable, tokenizer, config.ctx_len, config.batch_size, 4, config.seed + 1, layout)
    before = evaluate(model, None, measure)
    train_loader = example_loader(
        corpus, usable, tokenizer, config.ctx_len, config.batch_size, config.steps, config.seed, layout
    )
    lr = config.learning_rate
    history = tune(model, adapter, train_loader, lr, lr / 10, progress)
    after = evaluate(model, adapter, measure)
    extra = {"pieces": [corpus.ids[i] for i in usable], "loss_before": before, "loss_after": after}
    path = save_adapter(adapter, model, output, extra=extra)
    return path, {
        "pieces": len(usable),
        "loss_on_your_pieces_before": round(before, 3),
        "after": round(after, 3),
        **history,
    }
