"""One training run: corpora -> prefilter -> dataset -> Lightning -> exported ``model.pth``.

Two kinds of data: MIDI corpora (``pop909:``, ``folder:``, ``gigamidi:``; examples drawn with MidiTok on the fly),
or one compiled corpus (``compiled:FOLDER``, see ``midi_rwkv.data.compiled``: arrays only, about 20 times cheaper
per example, and no MidiTok or symusic needed, so a bare PyTorch machine trains from it).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import Dataset

from midi_rwkv.data.dataset import loader_of
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.model import PRESETS, RWKV7, RWKVConfig, init_weights, load_checkpoint, save_checkpoint
from midi_rwkv.tokenizer.examples import ExampleConfig
from midi_rwkv.train.train_config import TrainConfig
from midi_rwkv.io import atomic_write_json, file_sha256
from midi_rwkv.train.callbacks import AtomicCheckpointIO, LossCurve, PeriodicCheckpoint, read_loss_csv, write_loss_csv
from midi_rwkv.train.module import OptimConfig, RWKVLightning


@dataclass
class TrainingData:
    """What a run trains on, whatever the source: example datasets per split and the tokenizer they use."""

    train: Dataset
    validation: Dataset
    vocab_size: int
    save_tokenizer: Callable[[Path], object]  # writes the tokenizer beside the exported model


def midi_data(config: TrainConfig, out: Path, examples: ExampleConfig, progress: bool) -> TrainingData:
    """Examples drawn from MIDI corpora (prefiltered and split, cached in ``config.cache`` or OUT/cache)."""
    from midi_rwkv.data.corpora import MergedCorpus, open_corpus
    from midi_rwkv.data.dataset import InfillDataset
    from midi_rwkv.data.prefilter import prefilter
    from midi_rwkv.tokenizer import InfillTokenizer

    tokenizer = InfillTokenizer.load(config.tokenizer) if config.tokenizer else InfillTokenizer()
    corpus = MergedCorpus([open_corpus(spec) for spec in config.data])
    cached = Path(config.cache or out / "cache") / "manifest.json"
    manifest = prefilter(corpus, tokenizer, cached, seed=config.seed, progress=progress)
    shutil.copyfile(cached, out / "manifest.json")
    print(f"data: {json.dumps(manifest.summary())}")
    train_ids, val_ids, _ = manifest.usable_splits()
    return TrainingData(
        InfillDataset(corpus, train_ids, tokenizer, examples),
        InfillDataset(corpus, val_ids, tokenizer, examples),
        tokenizer.vocab_size,
        tokenizer.save,
    )


def compiled_data(config: TrainConfig, out: Path, examples: ExampleConfig) -> TrainingData:
    """Examples assembled from a compiled corpus (its splits were fixed when it was compiled)."""
    from midi_rwkv.data.compiled import CompiledCorpus, CompiledDataset, file_hash
    from midi_rwkv.data.splits import SPLITS, usable_splits

    if len(config.data) != 1:
        raise MidiRwkvError("give one compiled corpus (a folder of shards), not several --data")
    corpus = CompiledCorpus(config.data[0].removeprefix("compiled:"))
    if config.tokenizer and file_hash(config.tokenizer) != corpus.meta["tokenizer_sha256"]:
        raise MidiRwkvError(f"{config.tokenizer} is not the tokenizer {config.data[0]} was compiled with")
    train_ids, val_ids, _ = usable_splits({name: corpus.split(name) for name in SPLITS}, corpus.name)
    summary = {"corpus": corpus.name, "kept": {"train": len(train_ids), "validation": len(val_ids)},
               "tokens": corpus.tokens}
    (out / "manifest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"data: {json.dumps(summary)}")
    return TrainingData(
        CompiledDataset(corpus, train_ids, examples),
        CompiledDataset(corpus, val_ids, examples),
        corpus.vocab_size,
        lambda path: shutil.copyfile(corpus.tokenizer_file, path),
    )


def _strategy(name: str):
    if name.startswith("deepspeed"):
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise MidiRwkvError("the DeepSpeed strategy needs DeepSpeed: pip install deepspeed") from None
        from lightning.pytorch.strategies import DeepSpeedStrategy

        return DeepSpeedStrategy(stage=2, allgather_bucket_size=2e6, reduce_bucket_size=2e6)
    if name not in ("auto", "ddp"):
        raise MidiRwkvError(f"unknown strategy {name!r}: use auto, ddp or deepspeed_stage_2")
    return name


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (otherwise bf16 autocast is emulated and slower)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


def _precision(requested: str, gpu: bool) -> str:
    if requested != "auto":
        return requested
    return "bf16-mixed" if gpu or cpu_has_bf16() else "32-true"


def model_config(preset: str, ctx_len: int, vocab_size: int) -> RWKVConfig:
    """The architecture a run trains: its preset, sized to the vocabulary, with the run's context length."""
    config = PRESETS[preset](vocab_size=vocab_size)
    config.ctx_len = ctx_len
    return config


def export_model(model: RWKV7, path: Path, save_tokenizer: Callable[[Path], object], tokenizer_path: Path, steps: int,
                 specs: list[str], layout: str) -> Path:
    """The bf16 ``.pth`` + sidecar a run ships (with the sequence layout it was trained on), and the tokenizer
    beside it."""
    model_path = save_checkpoint(
        model,
        path,
        dtype=torch.bfloat16,
        extra={"steps": steps, "data": specs, "tokenizer_vocab_size": model.config.vocab_size, "layout": layout},
    )
    save_tokenizer(tokenizer_path)
    return model_path


def last_checkpoint(folder: Path) -> tuple[Path | None, int]:
    """The newest checkpoint in ``folder`` (as ``last.json`` names it) and its step; (None, 0) when none."""
    marker = folder / "last.json"
    if not marker.is_file():
        return None, 0
    last = json.loads(marker.read_text())
    return folder / last["checkpoint"], last["step"]


ORIGIN = "origin.json"  # in a run folder: where the run started (a lineage's step, or 0)


class LineageError(MidiRwkvError):
    """A lineage folder (``midi_rwkv.train.lineage``) is missing, damaged, too large, or does not fit the run."""


def same_architecture(a: RWKVConfig, b: RWKVConfig) -> bool:
    """Equal but for the training context length (which the weights do not depend on)."""
    return {**a.to_dict(), "ctx_len": 0} == {**b.to_dict(), "ctx_len": 0}


def describe(config: RWKVConfig) -> str:
    return f"{config.n_layer} x {config.n_embd}, head {config.head_size}, vocabulary {config.vocab_size}"


def _lineage_state(folder: Path) -> dict:
    if not (folder / "state.json").is_file():
        raise LineageError(f"{folder}: not a lineage (no state.json); write one with midi-rwkv save-lineage")
    return json.loads((folder / "state.json").read_text())


def run_origin(out: Path, config: TrainConfig, resume: bool) -> dict:
    """Where the run in ``out`` starts: read from ``OUT/origin.json`` when resuming, else written there now.

    A run that continues a lineage (``config.resume_from``) starts at its step, on data seed ``seed + step``,
    counting tokens on from the lineage's, and its loss.csv starts as the lineage's history. Returns the origin
    (``start_step`` 0 for a new run).
    """
    path = out / ORIGIN
    launched = os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
    if path.is_file() and (resume or launched):  # other processes of a multi-device run read what rank 0 wrote
        return json.loads(path.read_text())
    origin = {"run_id": uuid.uuid4().hex, "lineage": None, "start_step": 0, "weights_sha256": None,
              "data_seed": config.seed, "tokens_start": [0, 0], "schedule_warmup_steps": config.warmup_steps,
              "rewarmup_steps": 0}
    if config.resume_from:
        folder = Path(config.resume_from)
        state = _lineage_state(folder)
        step = state["step"]
        if step >= config.steps:
            raise LineageError(f"{folder} is at step {step}: give --steps above {step} to train it further")
        origin |= {"lineage": str(folder), "start_step": step, "weights_sha256": state["weights"]["sha256"],
                   "data_seed": config.seed + step, "schedule_warmup_steps": state["schedule"]["warmup_steps"],
                   "rewarmup_steps": config.warmup_steps,
                   "tokens_start": [state["tokens"]["computed"] or 0, state["tokens"]["real"] or 0]}
        if not resume or not (out / "checkpoints" / "last.json").is_file():  # the lineage's history, to append to
            write_loss_csv(out / "loss.csv", [r for r in read_loss_csv(folder / "loss.csv") if r["step"] <= step])
    atomic_write_json(path, origin)
    return origin


def lineage_weights(folder: Path, vocab_size: int, architecture: RWKVConfig) -> RWKV7:
    """A lineage's weights as a float32 model, checked against its state.json's sha256 and the run's architecture."""
    state = _lineage_state(folder)
    weights = folder / state["weights"]["file"]
    if not weights.is_file() or file_sha256(weights) != state["weights"]["sha256"]:
        raise LineageError(f"{weights}: missing, or its sha256 differs from state.json (damaged, a Git LFS pointer?)")
    model = load_checkpoint(weights, vocab_size=vocab_size).float()  # bf16 on disk -> float32 to train
    if not same_architecture(model.config, architecture):
        raise LineageError(f"{folder}'s model ({describe(model.config)}) does not match the run's preset "
                           f"({describe(architecture)})")
    model.config.ctx_len = architecture.ctx_len
    return model


def train(config: TrainConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> Path:
    """Run training; returns the exported ``model.pth``.

    Args:
        resume: continue from the checkpoint named in OUT/checkpoints/last.json.
        stop_after: stop at this step as if interrupted (the schedule still spans ``config.steps``).

    With ``config.resume_from`` (a lineage, see :mod:`midi_rwkv.train.lineage`), steps count on from the lineage's.
    """
    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    if not resume and (ckpt_dir / "last.json").exists():
        raise MidiRwkvError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    origin = run_origin(out, config, resume)
    offset = origin["start_step"]  # the lineage's step this run started at (0: a new run)
    L.seed_everything(config.seed, workers=True)
    if config.threads:
        torch.set_num_threads(config.threads)

    examples = ExampleConfig(**({"max_len": config.ctx_len + 1, "layout": config.layout} | config.examples))  # ids[:-1]
    compiled = [spec.startswith("compiled:") for spec in config.data]
    if any(compiled) and not all(compiled):
        raise MidiRwkvError("train on MIDI corpora or on one compiled corpus, not both")
    data = compiled_data(config, out, examples) if all(compiled) else midi_data(config, out, examples, progress)
    data.save_tokenizer(out / "tokenizer.json")  # now, so that any checkpoint can be exported with it

    ckpt_path, reached = last_checkpoint(ckpt_dir) if resume else (None, offset)
    reached = reached if ckpt_path else offset
    start = reached - offset  # this run's own steps done
    # Every process builds its own loader and takes its rank's share of each step's global batch (Lightning's launcher
    # sets these variables in the processes it starts); validation runs the same batches everywhere.
    world = config.devices * config.nodes
    rank = int(os.environ.get("NODE_RANK", 0)) * config.devices + int(os.environ.get("LOCAL_RANK", 0))
    batch = min(config.batch_size, len(data.train) // world)
    train_loader = loader_of(data.train, config.ctx_len, batch, config.steps - offset, start, origin["data_seed"],
                             config.workers, rank, world, config.length_groups)
    val_batch = min(config.batch_size * world, len(data.validation))  # the global batch, whole, in every process
    val_loader = loader_of(data.validation, config.ctx_len, val_batch, config.val_batches, 0, config.seed + 1,
                           config.workers)

    architecture = model_config(config.preset, config.ctx_len, data.vocab_size)
    if config.resume_from and ckpt_path is None:
        model = lineage_weights(Path(config.resume_from), data.vocab_size, architecture)
    elif config.init:
        model = load_checkpoint(config.init, vocab_size=data.vocab_size).float()
    else:
        model = init_weights(RWKV7(architecture), seed=config.seed)  # a resumed run's checkpoint replaces these
    model.gradient_checkpointing = config.grad_checkpointing
    optim = OptimConfig(config.lr_init, config.lr_final, origin["schedule_warmup_steps"] if offset else
                        config.warmup_steps, config.steps, weight_decay=config.weight_decay, start_step=offset,
                        rewarmup_steps=origin["rewarmup_steps"])
    module = RWKVLightning(model, optim)
    trainer = _trainer(config, max(0, (stop_after or config.steps) - offset), config.steps - reached, progress, [
        PeriodicCheckpoint(ckpt_dir, config.ckpt_every, offset),
        # the history is written at least as often as a checkpoint, so a lineage saved from one has its loss and tokens
        LossCurve(out, plot_every=max(1, min(config.val_every, config.ckpt_every or config.val_every)), offset=offset,
                  tokens_start=tuple(origin["tokens_start"])),
    ])
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    if module.dropped_examples:
        print(f"warning: {module.dropped_examples} examples could not be built and were dropped")
    if trainer.global_rank != 0 or offset + trainer.global_step < config.steps:
        return out / "model.pth"  # export once, by one process, when the run is complete
    model_path = export_model(module.model, out / "model.pth", data.save_tokenizer, out / "tokenizer.json",
                              offset + trainer.global_step, config.data, config.layout)
    print(f"exported {model_path} ({model_path.stat().st_size / 2**20:.1f} MiB) and {out / 'tokenizer.json'}")
    return model_path


def _trainer(config: TrainConfig, max_steps: int, steps_left: int, progress: bool, callbacks: list) -> L.Trainer:
    """The Lightning trainer of a run: ``max_steps`` of this run's own (not the lineage's) steps."""
    gpu = config.accelerator in ("gpu", "cuda") or (config.accelerator == "auto" and torch.cuda.is_available())
    return L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.nodes,
        strategy=_strategy(config.strategy),
        precision=_precision(config.precision, gpu),
        max_steps=max_steps,
        max_epochs=-1,
        gradient_clip_val=config.grad_clip if not config.strategy.startswith("deepspeed") else None,
        val_check_interval=min(config.val_every, max(1, steps_left)),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        limit_val_batches=config.val_batches,
        logger=False,
        enable_checkpointing=False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=False,
        use_distributed_sampler=False,  # the step sampler shards the global batch itself
    )
