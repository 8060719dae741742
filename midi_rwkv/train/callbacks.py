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
    """Every ``every`` steps and at the end: ``step-NNNNNNN.ckpt`` (all kept); ``last.json`` names the latest."""

    def __init__(self, folder: Path, every: int):
        self.folder, self.every = Path(folder), every

    def _save(self, trainer) -> None:
        step = trainer.global_step
        trainer.save_checkpoint(self.folder / f"step-{step:07d}.ckpt", weights_only=False)  # full state, to resume
        atomic_write_json(self.folder / "last.json", {"step": step, "checkpoint": f"step-{step:07d}.ckpt"})

    def on_train_batch_end(self, trainer, *args):
        if self.every and trainer.global_step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, *args):
        if not (self.folder / f"step-{trainer.global_step:07d}.ckpt").exists():
            self._save(trainer)


class LossCurve(L.Callback):
    """Records step, train loss, learning rate, the step's seconds and tokens/s (all positions computed, and the real
    ones: not padding) and validation loss; writes CSV and PNG."""

    FIELDS = ("step", "train_loss", "val_loss", "lr", "step_s", "tok_s", "real_tok_s")

    def __init__(self, folder: Path, plot_every: int = 100):
        self.folder, self.plot_every = Path(folder), plot_every
        self.rows: list[dict] = []
        csv_path = self.folder / "loss.csv"
        if csv_path.exists():  # resuming: keep the history
            with csv_path.open() as f:
                self.rows = [
                    {k: (float(v) if v else None) for k, v in row.items()} | {"step": int(float(row["step"]))}
                    for row in csv.DictReader(f)
                ]

    def on_train_batch_end(self, trainer, *args):
        m = trainer.callback_metrics
        step = trainer.global_step
        self.rows = [r for r in self.rows if r["step"] is None or r["step"] < step]  # drop rows a resume replays
        self.rows.append(
            {
                "step": step,
                "train_loss": _f(m.get("train_loss")),
                "val_loss": None,
                "lr": _f(m.get("lr")),
                "step_s": _f(m.get("step_s")),
                "tok_s": _f(m.get("tok_s")),
                "real_tok_s": _f(m.get("real_tok_s")),
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
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in self.rows)
        atomic_write_text(self.folder / "loss.csv", buffer.getvalue())
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


def _f(value) -> float | None:
    return None if value is None else float(value)
