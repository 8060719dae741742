"""Checkpoints written atomically, periodic checkpoints, and the loss curve (CSV + PNG)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L
from lightning.pytorch.plugins.io import TorchCheckpointIO

from midi_rwkv.io import atomic_write, atomic_write_json, atomic_write_text


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints go to a temporary file first, then are renamed into place."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        atomic_write(
            path, lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp, storage_options)
        )


class PeriodicCheckpoint(L.Callback):
    """Every ``every`` steps and at the end: ``step-NNNNNNN.ckpt`` (all kept); ``last.json`` names the latest.

    Steps are the lineage's: ``offset`` (the step a continued lineage started this run at) plus Lightning's own count.
    """

    def __init__(self, folder: Path, every: int, offset: int = 0):
        self.folder, self.every, self.offset = Path(folder), every, offset

    def _save(self, trainer) -> None:
        step = self.offset + trainer.global_step
        trainer.save_checkpoint(self.folder / f"step-{step:07d}.ckpt", weights_only=False)  # full state, to resume
        atomic_write_json(self.folder / "last.json", {"step": step, "checkpoint": f"step-{step:07d}.ckpt"})

    def on_train_batch_end(self, trainer, *args):
        if self.every and (self.offset + trainer.global_step) % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, *args):
        if not (self.folder / f"step-{self.offset + trainer.global_step:07d}.ckpt").exists():
            self._save(trainer)


class LossCurve(L.Callback):
    """Records step, train loss, learning rate, the step's seconds, tokens/s (all positions computed, and the real
    ones: not padding), the tokens seen so far (both kinds) and validation loss; writes CSV and PNG.

    Steps count from ``offset`` (a continued lineage's step). Tokens add up from the last row that has them (the
    history a continued run's loss.csv starts with), else from ``tokens_start`` (computed, real).
    """

    FIELDS = ("step", "train_loss", "val_loss", "lr", "step_s", "tok_s", "real_tok_s", "tokens", "real_tokens")

    def __init__(self, folder: Path, plot_every: int = 100, offset: int = 0,
                 tokens_start: tuple[float, float] = (0.0, 0.0)):
        self.folder, self.plot_every, self.offset, self.tokens_start = Path(folder), plot_every, offset, tokens_start
        self.rows: list[dict] = read_loss_csv(self.folder / "loss.csv")  # resuming: keep the history

    def _tokens_before(self) -> tuple[float, float]:
        for row in reversed(self.rows):
            if row.get("tokens") is not None:
                return row["tokens"], row.get("real_tokens") or 0.0
        return self.tokens_start

    def on_train_batch_end(self, trainer, *args):
        m = trainer.callback_metrics
        step = self.offset + trainer.global_step
        self.rows = [r for r in self.rows if r["step"] is None or r["step"] < step]  # drop rows a resume replays
        computed, real = self._tokens_before()
        self.rows.append(
            {
                "step": step,
                "train_loss": _f(m.get("train_loss")),
                "val_loss": None,
                "lr": _f(m.get("lr")),
                "step_s": _f(m.get("step_s")),
                "tok_s": _f(m.get("tok_s")),
                "real_tok_s": _f(m.get("real_tok_s")),
                "tokens": computed + (_f(m.get("step_tokens")) or 0.0),
                "real_tokens": real + (_f(m.get("step_real_tokens")) or 0.0),
            }
        )
        if step % self.plot_every == 0:
            self.write()

    def on_validation_end(self, trainer, *args):
        if self.rows and "val_loss" in trainer.callback_metrics and not trainer.sanity_checking:
            self.rows[-1]["val_loss"] = _f(trainer.callback_metrics["val_loss"])

    def on_train_end(self, trainer, *args):
        self.write()

    def write(self) -> None:
        write_loss_csv(self.folder / "loss.csv", self.rows)
        self.plot()

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in self.rows if r["train_loss"] is not None]
        losses = [r["train_loss"] for r in self.rows if r["train_loss"] is not None]
        val = [(r["step"], r["val_loss"]) for r in self.rows if r["val_loss"] is not None]
        if not steps:
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, losses, lw=0.8, alpha=0.6, label="train")
        if len(losses) >= 20:
            k = max(5, len(losses) // 50)
            smooth = [
                sum(losses[max(0, i - k + 1) : i + 1]) / len(losses[max(0, i - k + 1) : i + 1])
                for i in range(len(losses))
            ]
            ax.plot(steps, smooth, lw=1.5, label=f"train (mean of {k})")
        if val:
            ax.plot(*zip(*val), "o-", lw=1.5, label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        atomic_write(self.folder / "loss.png", lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
        plt.close(fig)


def read_loss_csv(path: Path) -> list[dict]:
    """The rows of a loss.csv (numbers, None for empty cells); [] when there is none."""
    if not path.is_file():
        return []
    with path.open() as f:
        return [
            {k: (float(v) if v else None) for k, v in row.items()} | {"step": int(float(row["step"]))}
            for row in csv.DictReader(f)
        ]


def write_loss_csv(path: Path, rows: list[dict]) -> Path:
    """Write rows as loss.csv (LossCurve.FIELDS, empty cells for None; columns a row lacks stay empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LossCurve.FIELDS, extrasaction="ignore")
    writer.writeheader()
    counts = ("tokens", "real_tokens")  # written as whole numbers
    writer.writerows({k: "" if v is None else round(v) if k in counts else v for k, v in r.items()} for r in rows)
    return atomic_write_text(path, buffer.getvalue())


def _f(value) -> float | None:
    return None if value is None else float(value)
