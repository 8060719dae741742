"""Training an adapter on a frozen base model, and measuring its loss on held-out pieces."""

from __future__ import annotations

import math
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from midi_rwkv.data.corpora import Corpus
from midi_rwkv.data.dataset import InfillDataset, loader_of
from midi_rwkv.model import RWKV7
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.examples import ExampleConfig
from midi_rwkv.train.module import L2Wrap, lm_loss


def freeze(model: RWKV7) -> RWKV7:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def example_loader(
    corpus: Corpus, indices: list[int], tokenizer: InfillTokenizer, ctx_len: int, batch: int, steps: int, seed: int,
    layout: str,
) -> DataLoader:
    """Default-knob examples fitting ``ctx_len`` (inputs are ids[:-1]) in the base model's ``layout``, in the main
    process."""
    data = InfillDataset(corpus, indices, tokenizer, ExampleConfig(max_len=ctx_len + 1, layout=layout))
    return loader_of(data, ctx_len, batch, steps, seed=seed)


@torch.no_grad()
def evaluate(model: RWKV7, adapter, loader: DataLoader) -> float:
    """Mean loss per learned token over every batch of ``loader`` (the adapter off when None)."""
    total, count = 0.0, 0
    for batch in loader:
        logits = adapter(model, batch["input_ids"]) if adapter is not None else model(batch["input_ids"])[0]
        tokens = int((batch["labels"] != -100).sum())
        total += lm_loss(logits, batch["labels"]).item() * tokens
        count += tokens
    return total / max(1, count)


def tune(model: RWKV7, adapter, loader: DataLoader, lr: float, lr_final: float, progress: bool = True) -> dict:
    """Train ``adapter`` (all its parameters) with AdamW and a cosine schedule over the loader's steps."""
    freeze(model)
    adapter.train()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    steps = len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (lr_final + (lr - lr_final) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))) / lr,
    )
    losses, start = [], time.perf_counter()
    bar = tqdm(loader, desc=f"tuning {adapter.kind}", unit="step", disable=not progress)
    for batch in bar:
        logits = adapter(model, batch["input_ids"])
        loss = L2Wrap.apply(lm_loss(logits, batch["labels"]), logits)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    adapter.eval()
    return {
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 1),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
