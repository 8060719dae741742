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


def held_out_loader(
    corpus: Corpus, indices: list[int], tokenizer: InfillTokenizer, ctx_len: int, batch: int, batches: int, seed: int,
    layout: str,
) -> DataLoader:
    """``batches`` x ``batch`` examples of ``indices`` to measure a loss on, however few the pieces (a batch holds at
    most one example of each piece, so fewer pieces than ``batch`` take more, smaller batches)."""
    per_batch = min(batch, len(indices))
    return example_loader(corpus, indices, tokenizer, ctx_len, batch, math.ceil(batches * batch / per_batch), seed,
                          layout)


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


class BestKeeper:
    """The held-out loss every few steps: keeps the adapter's parameters at the lowest one and says when to stop.

    Args:
        patience: measurements in a row without a lower loss after which training stops (0: it never stops early).
    """

    def __init__(self, model: RWKV7, adapter, loader: DataLoader, patience: int):
        self.model, self.adapter, self.loader, self.patience = model, adapter, loader, patience
        self.losses: list[tuple[int, float]] = []  # (step, held-out loss)
        self.best_step, self.best_loss, self.misses = 0, math.inf, 0
        self.best_state: dict[str, torch.Tensor] = {}

    def measure(self, step: int) -> bool:
        """Measure at ``step``; True when training should stop."""
        loss = evaluate(self.model, self.adapter, self.loader)
        self.losses.append((step, loss))
        if loss < self.best_loss:
            self.best_step, self.best_loss, self.misses = step, loss, 0
            self.best_state = {k: v.detach().clone() for k, v in self.adapter.state_dict().items()}
        else:
            self.misses += 1
        return self.patience > 0 and self.misses >= self.patience

    def restore(self) -> None:
        """Put the best parameters back into the adapter."""
        self.adapter.load_state_dict(self.best_state)

    def history(self) -> dict:
        return {"held_out_losses": [(step, round(loss, 4)) for step, loss in self.losses],
                "held_out_loss_before": self.losses[0][1] if self.losses else None,
                "best_step": self.best_step, "best_held_out_loss": self.best_loss}


def tune(
    model: RWKV7, adapter, loader: DataLoader, lr: float, lr_final: float, progress: bool = True,
    held_out: DataLoader | None = None, eval_every: int = 25, patience: int = 0,
) -> dict:
    """Train ``adapter`` (all its parameters) with AdamW and a cosine schedule over the loader's steps.

    With ``held_out``, its loss is measured before training, every ``eval_every`` steps and at the last step; the
    adapter ends with the parameters of the lowest one, and training stops after ``patience`` measurements in a row
    without a lower one (0: it runs every step).
    """
    freeze(model)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    steps = len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (lr_final + (lr - lr_final) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))) / lr,
    )
    keeper = BestKeeper(model, adapter, held_out, patience) if held_out is not None else None
    if keeper:
        keeper.measure(0)
    losses, start, stopped = [], time.perf_counter(), False
    adapter.train()
    bar = tqdm(loader, desc=f"tuning {adapter.kind}", unit="step", disable=not progress)
    for step, batch in enumerate(bar, 1):
        logits = adapter(model, batch["input_ids"])
        loss = L2Wrap.apply(lm_loss(logits, batch["labels"]), logits)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if keeper and (step % eval_every == 0 or step == steps):
            stopped = keeper.measure(step) and step < steps
            bar.set_postfix(loss=f"{loss.item():.3f}", held_out=f"{keeper.losses[-1][1]:.3f}")
            if stopped:
                break
    bar.close()
    adapter.eval()
    if keeper:
        keeper.restore()
    return {
        "steps": steps,
        "steps_run": len(losses),
        "stopped_early": stopped,
        "seconds": round(time.perf_counter() - start, 1),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        **(keeper.history() if keeper else {}),
    }
