"""A fine-tuning run: split the corpus by piece, measure, tune an adapter, measure again, save."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.data.prefilter import prefilter
from midi_rwkv.io import atomic_write_json
from midi_rwkv.model import load_checkpoint, save_checkpoint
from midi_rwkv.model.checkpoint import default_tokenizer
from midi_rwkv.peft.adapters import LoRA, StateAdapter, merge_lora, save_adapter, trainable_parameters
from midi_rwkv.peft.tune import evaluate, example_loader, tune
from midi_rwkv.tokenizer import InfillTokenizer


@dataclass
class TuneConfig:
    base: str  # base model .pth (tokenizer.json beside it unless `tokenizer` is set)
    data: str  # corpus spec, e.g. pop909:../shared/data/pop909
    out: str
    method: str = "state"  # state | lora
    rank: int = 4
    alpha: float = 4.0
    lr: float | None = None  # default: 5e-2 for state tuning, 1e-3 for LoRA
    steps: int = 200
    batch_size: int = 4
    ctx_len: int = 1024
    eval_batches: int = 8
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    tokenizer: str | None = None
    limit: int | None = None  # use at most this many pieces (quick experiments)


def merge_lora_checkpoint(base: str | Path, adapter_path: str | Path, out: str | Path) -> Path:
    """Write ``out`` (.pth + sidecar, bf16) = base weights with the LoRA folded in; the tokenizer is copied beside it."""
    base = Path(base)
    model = load_checkpoint(base).float()
    merge_lora(adapter_path, model)
    out = save_checkpoint(model, out, dtype=torch.bfloat16, extra={"merged_lora": str(adapter_path), "base": str(base)})
    tokenizer = default_tokenizer(base)
    if tokenizer.is_file() and tokenizer.resolve() != default_tokenizer(out).resolve():
        shutil.copyfile(tokenizer, out.with_name("tokenizer.json"))
    return out


def run(config: TuneConfig, progress: bool = True) -> dict:
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(config.base)
    tokenizer = InfillTokenizer.load(config.tokenizer or default_tokenizer(base))
    model = load_checkpoint(base, vocab_size=tokenizer.vocab_size).float()
    corpus = open_corpus(config.data)
    if config.limit:
        corpus.ids = corpus.ids[: config.limit]
    manifest = prefilter(corpus, tokenizer, out / "cache" / "manifest.json", seed=config.seed, ratios=config.split, progress=progress)
    split = {name: [corpus.ids[i] for i in ids] for name, ids in manifest.splits.items()}
    atomic_write_json(out / "split.json", {"corpus": corpus.name, "seed": config.seed, **split})
    print(f"split by song (seed {config.seed}): " + ", ".join(f"{k} {len(v)}" for k, v in split.items()) + f" -> {out / 'split.json'}")
    adapter = StateAdapter(model) if config.method == "state" else LoRA(model, config.rank, config.alpha).attach()
    lr = config.lr or (5e-2 if config.method == "state" else 1e-3)
    train_ids, _, test = manifest.usable_splits()
    test_loader = example_loader(corpus, test, tokenizer, config.ctx_len, config.batch_size, config.eval_batches, config.seed + 7)
    before = evaluate(model, None, test_loader)
    train_loader = example_loader(corpus, train_ids, tokenizer, config.ctx_len, config.batch_size, config.steps, config.seed)
    history = tune(model, adapter, train_loader, lr, lr / 10, progress)
    after = evaluate(model, adapter, test_loader)
    report = {"method": config.method, "trainable_parameters": trainable_parameters(adapter), "lr": lr,
              "test_loss_before": round(before, 4), "test_loss_after": round(after, 4), **history, "config": asdict(config)}
    name = "state.safetensors" if config.method == "state" else f"lora_r{config.rank}.safetensors"
    save_adapter(adapter, model, out / name, extra={"report": {k: v for k, v in report.items() if k != "config"}})
    atomic_write_json(out / "report.json", report)
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1))
    return report
