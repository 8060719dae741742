"""The self-similarity matrix as a PNG, with the sections along both axes and, for a span, its best sources."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from midi_rwkv.io import atomic_write
from midi_rwkv.structure.song import Section, SongStructure, Source

SECTION_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def _mark_sections(ax, sections: Sequence[Section], count: int) -> None:
    """Coloured bands with the labels in them under the x axis and left of the y axis (bar i is the cell
    [i - 0.5, i + 0.5]); thin lines across the matrix at each boundary."""
    from matplotlib.patches import Rectangle

    colours: dict[str, str] = {}
    band = count * 0.035
    for section in sections:
        colour = colours.setdefault(section.label, SECTION_COLOURS[len(colours) % len(SECTION_COLOURS)])
        lo, hi = section.start - 0.5, section.end - 0.5
        ax.add_patch(Rectangle((lo, count - 0.5 + band * 0.2), hi - lo, band, color=colour, clip_on=False, lw=0))
        ax.add_patch(Rectangle((-0.5 - band * 1.2, lo), band, hi - lo, color=colour, clip_on=False, lw=0))
        style = {"ha": "center", "va": "center", "fontsize": 7, "color": "white", "weight": "bold", "clip_on": False}
        ax.text((lo + hi) / 2, count - 0.5 + band * 0.7, section.label, **style)
        ax.text(-0.5 - band * 0.7, (lo + hi) / 2, section.label, **style)
        if section.start > 0:
            for line in (ax.axvline, ax.axhline):
                line(lo, color="white", lw=0.6, alpha=0.7)


def _mark_span(ax, span: tuple[int, int], sources: Sequence[Source], count: int) -> None:
    """The span as a gold band, each source as a box where the span's rows meet the window's columns."""
    from matplotlib.patches import Rectangle

    start, end = span
    n = end - start
    for line in (ax.axvspan, ax.axhspan):
        line(start - 0.5, end - 0.5, color="gold", alpha=0.18, lw=0)
    for rank, source in enumerate(sources, 1):
        for x, y in ((source.start, start), (start, source.start)):
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), n, n, fill=False, ec="gold" if rank == 1 else "orange",
                                   lw=1.6 if rank == 1 else 0.8))
        ax.text(source.start + n / 2 - 0.5, start - 0.5 - count * 0.01, str(rank), color="black", ha="center",
                va="bottom", fontsize=7, fontweight="bold")


def render(structure: SongStructure, path: str | Path, tracks: Sequence[int] = (), title: str = "",
           span: tuple[int, int] | None = None, sources: Sequence[Source] = ()) -> Path:
    """Write a PNG of the combined self-similarity matrix (and one panel per track in ``tracks``).

    Bars count from 1 on the axes. Sections are coloured bands with their labels; a ``span`` (0-based [start, end)) is
    shaded and its ``sources``, ranked, are boxed (the best in gold).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = structure.num_bars
    panels = [("all tracks", structure.combined())]
    panels += [(f"track {t}", structure.similarity(t)) for t in tracks]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 6.4), squeeze=False)
    sections = structure.sections()
    for ax, (name, matrix) in zip(axes[0], panels):
        image = ax.imshow(matrix, cmap="magma", vmin=0, vmax=1, origin="upper", interpolation="nearest")
        ticks = list(range(0, count, 4 * max(1, round(count / 48))))
        ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
        ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
        ax.xaxis.tick_top()  # the section bands take the bottom and left edges
        ax.yaxis.tick_right()
        _mark_sections(ax, sections, count)
        if span is not None:
            _mark_span(ax, span, sources, count)
        ax.set_xlim(-0.5, count - 0.5)  # the bands lie outside: keep them out of the limits
        ax.set_ylim(count - 0.5, -0.5)
        ax.set_title(name, fontsize=10, pad=16)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.08)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path
