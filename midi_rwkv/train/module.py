"""The LightningModule: loss (cross-entropy + L2Wrap), optimiser groups, learning-rate schedule.

Differences from the original (docs/original-release.md#lr-schedule): the cosine decay runs over the *actual* number
of steps of this run, reaching ``lr_final`` at the end; the original's decay over 3.3e11 tokens
leaves the rate constant in practice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.nn.functional as F

from midi_rwkv.data.dataset import IGNORE
from midi_rwkv.model import RWKV7


@dataclass
class OptimConfig:
    """Optimiser and schedule; defaults are the paper's (docs/original-release.md#optimiser)."""

    lr_init: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    lr_final: float = field(default=1e-5, metadata={"help": "learning rate at the last step"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warm-up from 1% of lr_init"})
    total_steps: int = field(default=1000, metadata={"help": "steps of the whole run (the cosine spans them)"})
    start_step: int = field(default=0, metadata={"help": "the schedule's step at this run's first step (a lineage's "
                                                          "step when continuing one; 0 for a new run)"})
    rewarmup_steps: int = field(default=0, metadata={"help": "when continuing a lineage with a fresh optimiser: "
                                                              "ramp from 1% of the schedule's rate over these steps"})
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-18
    weight_decay: float = field(default=0.1, metadata={"help": "on 2-D weight matrices only"})

    def __post_init__(self):
        if not 0 < self.lr_final <= self.lr_init:
            raise ValueError("need 0 < lr_final <= lr_init")
        if self.total_steps <= 0 or self.warmup_steps < 0:
            raise ValueError("total_steps must be positive and warmup_steps non-negative")
        if not 0 <= self.start_step < self.total_steps or self.rewarmup_steps < 0:
            raise ValueError("need 0 <= start_step < total_steps and rewarmup_steps non-negative")


def lr_multiplier(step: int, config: OptimConfig) -> float:
    """lr / lr_init at this run's ``step`` (0-based): the schedule at ``start_step + step``, scaled by a linear ramp
    from 0.01 to 1 over the first ``rewarmup_steps`` (a continued lineage's fresh optimiser). From step
    ``rewarmup_steps`` on, the rate is the one an uninterrupted run would have had at that step of the schedule."""
    ramp = 0.01 + 0.99 * step / config.rewarmup_steps if step < config.rewarmup_steps else 1.0
    return ramp * schedule_multiplier(config.start_step + step, config)


def schedule_multiplier(step: int, config: OptimConfig) -> float:
    """The schedule's lr / lr_init at its ``step``: warm-up from 0.01 to 1, then cosine down to lr_final / lr_init
    at ``total_steps``."""
    if step < config.warmup_steps:
        return 0.01 + 0.99 * step / config.warmup_steps
    span = max(1, config.total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    final = config.lr_final / config.lr_init
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


class L2Wrap(torch.autograd.Function):
    """Returns ``loss`` unchanged; its backward adds ``weight * max_logit`` at each position's argmax, which keeps
    logits from growing without bound (RWKV-LM). ``weight`` [B, T] defaults to 1e-4 / (B*T) everywhere;
    training passes 1e-4 / (real positions) on real positions and 0 on padding (which RWKV-LM never has)."""

    @staticmethod
    def forward(ctx, loss, logits, weight=None):
        ctx.save_for_backward(logits, weight if weight is not None else torch.tensor([]))
        ctx.has_weight = weight is not None
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        logits, weight = ctx.saved_tensors
        if not ctx.has_weight:
            weight = torch.full(logits.shape[:2], 1e-4 / (logits.shape[0] * logits.shape[1]), device=logits.device)
        top, index = logits.max(dim=-1, keepdim=True)
        extra = torch.zeros_like(logits).scatter_(-1, index, top * weight[..., None].to(top.dtype))
        return grad_output, extra, None


def param_groups(model: RWKV7, config: OptimConfig) -> list[dict]:
    """Weight decay on 2-D ``.weight`` matrices; ``att.w0`` at 2x learning rate; the rest plain."""
    decay, double, plain = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("att.w0"):
            double.append(p)
        elif p.dim() == 2 and name.endswith(".weight") and "ln" not in name:
            decay.append(p)
        else:
            plain.append(p)
    return [
        {"params": decay, "weight_decay": config.weight_decay, "lr": config.lr_init},
        {"params": double, "weight_decay": 0.0, "lr": 2 * config.lr_init},
        {"params": plain, "weight_decay": 0.0, "lr": config.lr_init},
    ]


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


class RWKVLightning(L.LightningModule):
    def __init__(self, model: RWKV7, optim: OptimConfig):
        super().__init__()
        self.model, self.optim = model, optim
        self._last_time: float | None = None
        self.dropped_examples = 0  # examples the collator could not build (summed from every batch)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(the loss to differentiate, the loss to report, L2Wrap's weights): the mean over every learned token,
        and the L2Wrap term spread over every real position, of the step's global batch. With several processes,
        each scales its share by world / global count, so that the gradients DDP averages are those of one
        process holding the whole batch."""
        world = self.trainer.world_size if self._trainer is not None else 1
        reduce = self.trainer.strategy.reduce if world > 1 else (lambda x, reduce_op: x)
        weight = None
        if mask is not None:
            weight = mask.float() * (1e-4 * world / reduce(mask.sum().float(), reduce_op="sum"))
        if world == 1:
            loss = lm_loss(logits, labels)
            return loss, loss, weight
        ce = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        tokens = reduce((labels != IGNORE).sum().float(), reduce_op="sum")
        total = reduce(ce.detach(), reduce_op="sum")
        return ce * world / tokens, total / tokens, weight

    def training_step(self, batch, batch_idx):
        self.dropped_examples += int(batch.get("dropped", 0))
        logits, _ = self.model(batch["input_ids"])
        loss, reported, weight = self._loss(logits, batch["labels"], batch.get("mask"))
        loss = L2Wrap.apply(loss, logits, weight)
        tokens = int((batch["labels"] != IGNORE).sum())
        real = float(batch["mask"].sum()) if "mask" in batch else batch["input_ids"].numel()
        now = time.perf_counter()
        if self._last_time is not None:
            seconds = now - self._last_time
            self.log("step_s", seconds, on_step=True)
            self.log("tok_s", batch["input_ids"].numel() / seconds, prog_bar=True, on_step=True)
            self.log("real_tok_s", real / seconds, on_step=True)
        self._last_time = now
        # the step's positions, computed and real (not padding), over every process: LossCurve sums them
        many = self._trainer is not None and self.trainer.world_size > 1
        self.log("step_tokens", float(batch["input_ids"].numel()), on_step=True, reduce_fx="sum", sync_dist=many)
        self.log("step_real_tokens", float(real), on_step=True, reduce_fx="sum", sync_dist=many)
        self.log("train_loss", reported, prog_bar=True, on_step=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True)
        self.log("tokens", float(tokens), on_step=True, reduce_fx="sum")
        return loss

    def validation_step(self, batch, batch_idx):
        logits, _ = self.model(batch["input_ids"])
        loss = lm_loss(logits, batch["labels"])
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=batch["input_ids"].shape[0])
        self._last_time = None  # validation time is not training throughput

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(param_groups(self.model, self.optim), betas=self.optim.betas, eps=self.optim.eps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, self.optim))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
