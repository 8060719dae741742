"""Piano rolls: the original and its candidates one above the other, tracks in colours, changed notes drawn bold."""

from __future__ import annotations

from pathlib import Path

from symusic import Score

from midi_rwkv.io import atomic_write

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _notes(track) -> set[tuple[int, int, int]]:
    return {(n.time, n.duration, n.pitch) for n in track.notes}


def render(original: Score, candidates: list[tuple[str, Score]], path: str | Path, span: tuple[int, int] | None = None,
           title: str = "", window: tuple[int, int] | None = None) -> Path:
    """Write the PNG of :func:`draw`."""
    import matplotlib.pyplot as plt

    fig = draw(original, candidates, span, title, window)
    path = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path


def draw(original: Score, candidates: list[tuple[str, Score]], span: tuple[int, int] | None = None, title: str = "",
         window: tuple[int, int] | None = None):
    """A figure: one panel for ``original`` and one per (name, score) in ``candidates``.

    Time is in beats. In a candidate, notes that the original does not have are drawn opaque and outlined, notes it
    shares faintly, so what the model wrote stands out. ``span``: (start, end) ticks to shade, e.g. the infilled bars.
    ``window``: (start, end) ticks to draw (default: the whole song); the pitch axis fits the notes inside it.
    Each track is one collection per panel, so a band song draws as fast as a solo.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("original", original)] + list(candidates)
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.4 * len(panels)), sharex=True, squeeze=False)
    tpq = original.ticks_per_quarter
    lo, hi = window if window is not None else (0, None)
    pitches = []
    for ax, (name, score) in zip(axes[:, 0], panels):
        scale = tpq / score.ticks_per_quarter
        for t, track in enumerate(score.tracks):
            known = _notes(original.tracks[t]) if t < len(original.tracks) and score is not original else None
            shown = [n for n in track.notes
                     if n.time * scale + n.duration * scale > lo and (hi is None or n.time * scale < hi)]
            new = [n for n in shown if known is not None and (n.time, n.duration, n.pitch) not in known]
            kept = [n for n in shown if known is None or (n.time, n.duration, n.pitch) in known]
            pitches += [n.pitch for n in shown]
            colour = COLOURS[t % len(COLOURS)]
            label = f"{t}: {'drums' if track.is_drum else f'program {track.program}'}"
            for notes, alpha, edge in ((kept, 1.0 if known is None else 0.25, "none"), (new, 1.0, "black")):
                if notes:
                    _draw(ax, notes, scale / tpq, colour, alpha, edge, label)
                    label = None
        if span is not None:
            ax.axvspan(span[0] / tpq, span[1] / tpq, color="gold", alpha=0.15, lw=0)
        ax.set_ylabel(f"{name}\npitch", fontsize=9)
        ax.grid(alpha=0.2)
        ax.legend(fontsize=7, ncol=5, loc="upper right")
    if window is not None:
        axes[-1, 0].set_xlim(lo / tpq, hi / tpq)
        if pitches:
            for ax in axes[:, 0]:
                ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    axes[-1, 0].set_xlabel("beats")
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _draw(ax, notes, beats_per_tick: float, colour: str, alpha: float, edge: str, label: str | None) -> None:
    """Notes as one collection of rectangles (time in beats, pitch)."""
    from matplotlib.collections import PolyCollection

    boxes = []
    for n in notes:
        x0, x1 = n.time * beats_per_tick, n.time * beats_per_tick + max(n.duration * beats_per_tick, 0.05)
        boxes.append([(x0, n.pitch - 0.4), (x1, n.pitch - 0.4), (x1, n.pitch + 0.4), (x0, n.pitch + 0.4)])
    ax.add_collection(PolyCollection(boxes, facecolors=colour, alpha=alpha, edgecolors=edge, linewidths=0.4,
                                     label=label))
    ax.autoscale_view()
