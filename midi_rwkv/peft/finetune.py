"""Fine-tuning runs: on a corpus split by piece (``midi-rwkv tune``), or on a composer's folder (``tune-style``).

Both measure the loss on music they do not train on, before and after; keep the adapter at the lowest held-out loss,
stopping when it stops falling; and say in one line whether the adapter generalised (:func:`holdout.verdict`).
"""

from __future__ import annotations

import json
import resource
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from midi_rwkv.data.corpora import Corpus, FolderCorpus, SubsetCorpus, open_corpus
from midi_rwkv.data.prefilter import check_piece, prefilter
from midi_rwkv.data.splits import SPLIT_SEED, SPLITS
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write_json
from midi_rwkv.model import load_checkpoint, save_checkpoint
from midi_rwkv.model.checkpoint import default_tokenizer, model_layout, open_model, resolve_model
from midi_rwkv.peft.adapters import LoRA, StateAdapter, merge_lora, save_adapter, trainable_parameters
from midi_rwkv.peft.holdout import MIN_BARS_TO_SPLIT, held_out_pieces, hold_out_bars, read_split_file, verdict
from midi_rwkv.peft.tune import evaluate, example_loader, held_out_loader, tune
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def peak_rss_mib() -> float:
    """The most resident memory this process has held so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def corpus_splits(config: TuneConfig, tokenizer, out: Path, progress: bool) -> tuple[Corpus, list, list, list]:
    """The corpus and its usable (train, validation, test) indices: from ``config.split_file`` when given (the
    corpus is then the pieces it names), else the base model's own split by song (:func:`midi_rwkv.data.prefilter.
    split_key`, seed ``SPLIT_SEED`` whatever ``config.seed``), so the test songs are those ``midi-rwkv evaluate`` draws
    its prompts from and none was trained on by the base."""
    corpus = open_corpus(config.data)
    named = None
    if config.split_file:
        given = read_split_file(config.split_file, corpus)
        listed = sorted({i for ids in given.values() for i in ids})
        position = {i: k for k, i in enumerate(listed)}
        corpus = SubsetCorpus(corpus, listed, "split-file")
        named = {s: [position[i] for i in ids] for s, ids in given.items()}
    elif config.limit:
        corpus.ids = corpus.ids[: config.limit]
    manifest = prefilter(
        corpus, tokenizer, out / "cache" / "manifest.json", seed=SPLIT_SEED, ratios=config.split, progress=progress
    )
    if named is None:
        return corpus, *manifest.usable_splits()
    kept = {i for ids in manifest.splits.values() for i in ids}
    train, validation, test = ([i for i in named[s] if i in kept] for s in SPLITS)
    if not train or not test:
        raise MidiRwkvError(f"{config.split_file}: no usable piece in its train or test split (see the manifest)")
    return corpus, train, validation, test


def run(config: TuneConfig, progress: bool = True) -> dict:
    """Split the corpus by piece, measure the test loss, tune (keeping the adapter at the lowest validation loss),
    measure again; save the adapter and a report."""
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, model_path = open_model(config.model, config.tokenizer)
    layout = model_layout(model_path)
    corpus, train_ids, val_ids, test = corpus_splits(config, tokenizer, out, progress)
    split = {"train": train_ids, "validation": val_ids, "test": test}
    rule = None if config.split_file else {"seed": SPLIT_SEED, "ratios": list(config.split)}  # the base's split
    atomic_write_json(out / "split.json", {"corpus": corpus.name, "seed": config.seed, "split_file": config.split_file,
                                           "song_split": rule}
                      | {k: [corpus.ids[i] for i in v] for k, v in split.items()})
    source = (f"as {config.split_file} names them" if config.split_file
              else f"by song as the base model's (seed {SPLIT_SEED}, {'/'.join(f'{r:g}' for r in config.split)})")
    print(f"split {source}: " + ", ".join(f"{k} {len(v)}" for k, v in split.items()) + f" -> {out / 'split.json'}")
    adapter = StateAdapter(model) if config.method == "state" else LoRA(model, config.rank, config.alpha).attach()
    lr = config.learning_rate
    c = config
    test_loader = held_out_loader(corpus, test, tokenizer, c.ctx_len, c.batch_size, c.eval_batches, c.seed + 7, layout)
    val_loader = held_out_loader(
        corpus, val_ids, tokenizer, c.ctx_len, c.batch_size, c.eval_batches, c.seed + 8, layout
    ) if val_ids else None
    if val_loader is None:
        print("no validation piece: every step runs, and the last adapter is kept")
    before = evaluate(model, None, test_loader)
    train_loader = example_loader(corpus, train_ids, tokenizer, c.ctx_len, c.batch_size, c.steps, c.seed, layout)
    history = tune(model, adapter, train_loader, lr, lr / 10, progress, val_loader, c.eval_every, c.patience)
    after = evaluate(model, adapter, test_loader)
    generalised, line = verdict(before, after, c.min_gain, _count(len(test), "test piece"))
    report = {
        "method": config.method,
        "trainable_parameters": trainable_parameters(adapter),
        "lr": lr,
        "pieces": {k: len(v) for k, v in split.items()},
        "test_loss_before": round(before, 4),
        "test_loss_after": round(after, 4),
        "generalised": generalised,
        **{k.replace("held_out", "validation"): v for k, v in history.items()},  # tune stops on its validation pieces
        "peak_rss_mib": peak_rss_mib(),
        "config": asdict(config),
    }
    name = "state.safetensors" if config.method == "state" else f"lora_r{config.rank}.safetensors"
    save_adapter(adapter, model, out / name, {"report": {k: v for k, v in report.items() if k != "config"}}, model_path)
    atomic_write_json(out / "report.json", report)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1))
    print(f"{config.method}: {line}")
    return report


def _usable(corpus: Corpus, tokenizer) -> list[int]:
    usable = []
    for i in range(len(corpus)):
        reason = check_piece(corpus, i, tokenizer, min_bars=1, min_notes=0)
        if reason:
            print(f"skipping {corpus.ids[i]}: {reason}")
        else:
            usable.append(i)
    if not usable:
        raise MidiRwkvError(f"no usable MIDI file in {corpus.name.removeprefix('folder:')}")
    return usable


def style_split(corpus: Corpus, usable: list[int], tokenizer, share: float, seed: int
                ) -> tuple[Corpus, list[int], list[int], str]:
    """(corpus, train, held out, why nothing is held out): a ``share`` of the pieces (at least one), or with one
    piece its last bars (:func:`holdout.hold_out_bars`), or nothing when that piece is too short."""
    if len(usable) >= 2:
        held = [usable[k] for k in held_out_pieces([corpus.ids[i] for i in usable], share, seed)]
        return corpus, [i for i in usable if i not in held], held, ""
    index = usable[0]
    bars = tokenizer.prepare(corpus.load(index), corpus.ids[index]).bars
    parts = hold_out_bars(corpus, index, [(b.start, b.end) for b in bars], share)
    if parts is None:
        return corpus, usable, [], (
            f"one piece of {len(bars)} bars (fewer than {MIN_BARS_TO_SPLIT}) leaves nothing to hold out, so every "
            "loss is on the music it trained on; give it 2 or more pieces"
        )
    return parts, [0], [1], ""


def tune_style(config: TuneConfig, pieces: str | Path, output: str | Path, progress: bool = True
               ) -> tuple[Path, dict, str]:
    """A composer's style: state tuning on a folder's usable pieces (short pieces welcome) less the ones it holds out.

    Only the initial state is trained, so the style file is small and costs nothing at generation time. Returns the
    file, a summary, and one line on whether the style generalised to the held-out pieces.
    """
    c = config
    model, tokenizer, model_path = open_model(c.model, c.tokenizer)
    layout = model_layout(model_path)
    folder = FolderCorpus(pieces)
    corpus, train, held, why_not = style_split(folder, _usable(folder, tokenizer), tokenizer, c.hold_out, c.seed)
    held_names = [corpus.ids[i] for i in held]
    print(f"training on {_count(len(train), 'piece')}, holding out {', '.join(held_names) or 'none'}")
    torch.manual_seed(c.seed)
    adapter = StateAdapter(model)
    measure = held_out_loader(corpus, train, tokenizer, c.ctx_len, c.batch_size, c.eval_batches, c.seed + 1, layout)
    held_loader = held_out_loader(
        corpus, held, tokenizer, c.ctx_len, c.batch_size, c.eval_batches, c.seed + 7, layout
    ) if held else None
    before = evaluate(model, None, measure)
    train_loader = example_loader(corpus, train, tokenizer, c.ctx_len, c.batch_size, c.steps, c.seed, layout)
    history = tune(model, adapter, train_loader, c.learning_rate, c.learning_rate / 10, progress, held_loader,
                   c.eval_every, c.patience)
    after = evaluate(model, adapter, measure)
    summary = {"pieces": len(train), "held_out": held_names, "loss_on_your_pieces_before": round(before, 3),
               "loss_on_your_pieces_after": round(after, 3)}
    if held:
        held_before, held_after = history["held_out_loss_before"], history["best_held_out_loss"]
        generalised, line = verdict(held_before, held_after, c.min_gain, _count(len(held), "held-out piece"))
        summary |= {"held_out_loss_before": round(held_before, 3), "held_out_loss_after": round(held_after, 3),
                    "generalised": generalised}
        line += " (the held-out pieces also chose the step kept)"
    else:
        line = f"cannot tell whether it generalises: {why_not}"
    summary |= {k: history[k] for k in ("steps", "steps_run", "stopped_early", "best_step", "seconds") if k in history}
    extra = {**summary, "pieces": [corpus.ids[i] for i in train]}
    path = save_adapter(adapter, model, output, extra=extra, base_path=model_path)
    return path, summary, f"style {line}"
