"""Piano rolls: the original and its candidates one above the other, tracks in colours, changed notes drawn bold."""

from __future__ import annotations

from pathlib import Path

from symusic import Score

from midi_rwkv.io import atomic_write

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _notes(track) -> set[tuple[int, int, int]]:
    return {(n.time, n.duration, n.pitch) for n in track.notes}


def render(original: Score, candidates: list[tuple[str, Score]], path: str | Path, span: tuple[int, int] | None = None,
           title: str = "") -> Path:
    """Write a PNG: one panel for ``original`` and one per (name, score) in ``candidates``.

    Time is in beats. In a candidate, notes that the original does not have are drawn opaque and outlined, notes it
    shares faintly, so what the model wrote stands out. ``span``: (start, end) ticks to shade, e.g. the infilled bars.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("original", original)] + list(candidates)
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.4 * len(panels)), sharex=True, squeeze=False)
    tpq = original.ticks_per_quarter
    for ax, (name, score) in zip(axes[:, 0], panels):
        scale = tpq / score.ticks_per_quarter
        for t, track in enumerate(score.tracks):
            colour = COLOURS[t % len(COLOURS)]
            known = _notes(original.tracks[t]) if t < len(original.tracks) and score is not original else None
            label = f"{t}: {'drums' if track.is_drum else f'program {track.program}'}"
            for k, note in enumerate(track.notes):
                new = known is not None and (note.time, note.duration, note.pitch) not in known
                ax.broken_barh(
                    [(note.time * scale / tpq, max(note.duration * scale / tpq, 0.05))],
                    (note.pitch - 0.4, 0.8),
                    facecolors=colour,
                    alpha=1.0 if new or known is None else 0.25,
                    edgecolor="black" if new else "none",
                    linewidth=0.4,
                    label=label if k == 0 else None,
                )
        if span is not None:
            ax.axvspan(span[0] / tpq, span[1] / tpq, color="gold", alpha=0.15, lw=0)
        ax.set_ylabel(f"{name}\npitch", fontsize=9)
        ax.grid(alpha=0.2)
        ax.legend(fontsize=7, ncol=5, loc="upper right")
    axes[-1, 0].set_xlabel("beats")
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    path = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path
