"""From results.csv rows to summary.md and plots, laid out like the paper's tables and figures."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from midi_rwkv.io import atomic_write, atomic_write_text
from midi_rwkv.metrics.stats import bootstrap_ci, compare
from midi_rwkv.structure import REPEAT_THRESHOLD

# name -> (label, higher is better?)
MUSIC = {
    "content_preservation": ("CP", True),
    "groove_similarity": ("GS", True),
    "groove_consistency": ("groove consistency", None),  # compare with the original row, not up or down
    "pche_difference": ("PCHE diff", False),
    "onset_f1": ("onset F1", True),
    "density_difference": ("density diff", False),
    "polyphony_difference": ("polyphony diff", False),
    "pitch_range_difference": ("range diff", False),
    "out_of_register": ("out of register", False),
    "repeated_onsets": ("repeated onsets", None),  # compare with the original row
    "copy_rate": ("copy rate", None),  # bars equal to a bar elsewhere in the song: compare with the original row
}
CONTROLS = {
    "density_error": ("density error", False),
    "polyphony_error": ("polyphony error", False),
    "duration_accuracy": ("duration accuracy", True),
    "silent_bars": ("silent where 4+ asked", False),
}
TRACK_CONTROLS = {"control_error": ("track control error", False)}  # whole-track prompts: one set of track controls
TESTED = ["content_preservation", "groove_similarity", "pche_difference", "onset_f1",
          "density_error", "polyphony_error", "duration_accuracy"]
TRACK_TESTED = ["content_preservation", "groove_similarity", "pche_difference", "onset_f1", "control_error"]
BASELINES = ("copy", "structure-copy", "other-track", "silence")  # the reference rows every model is tested against
SPLIT = ["content_preservation", "groove_similarity", "density_error", "copy_rate"]  # the repeat / no-repeat tables
SPLIT_TESTED = ["content_preservation", "groove_similarity", "density_error"]


def table(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """system -> metric -> prompt -> value."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        out[row["system"]][row["metric"]][row["prompt"]] = float(row["value"])
    return out


def _cell(values: dict[str, float]) -> str:
    v = np.array([x for x in values.values() if not math.isnan(x)])
    if not len(v):
        return "n/a"
    low, high = bootstrap_ci(v)
    return f"{v.mean():.3f} ± {v.std():.3f} [{low:.3f}, {high:.3f}]" + (
        f" (n={len(v)})" if len(v) < len(values) else ""
    )


def _arrow(better) -> str:
    return "" if better is None else (" ↑" if better else " ↓")


def _metric_table(data, systems: list[str], metrics: dict) -> list[str]:
    lines = [
        "| system | " + " | ".join(label + _arrow(b) for label, b in metrics.values()) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for system in systems:
        lines.append(f"| {system} | " + " | ".join(_cell(data[system].get(m, {})) for m in metrics) + " |")
    return lines


def comparisons(systems: list[str], models: list[str]) -> list[tuple[str, str]]:
    """(a, b) pairs to test: every model against the copy heuristic and silence, and the first model against the
    others."""
    pairs = [(base, m) for base in BASELINES if base in systems for m in models]
    pairs += [(models[0], m) for m in models[1:]]
    return pairs


def summary(rows: list[dict], models: list[str], references: list[str], settings: dict, faithful: bool) -> str:
    data = table(rows)
    systems = [s for s in models + references if s in data]
    track_mode = settings.get("mode") == "track"
    controls, tested = (TRACK_CONTROLS, TRACK_TESTED) if track_mode else (CONTROLS, TESTED)
    asked = (
        "whole tracks written again after the others"
        if track_mode
        else f"{settings['bars']} bars infilled with up to {settings['context']} bars of context on each side"
    )
    seconds = {s: np.mean(list(data[s]["seconds"].values())) for s in models if s in data}
    definitions = (
        "the original release (faithful)"
        if faithful
        else "fixed (silence counts as music; see midi_rwkv/metrics/music.py)"
    )
    lines = [
        "# Evaluation summary",
        "",
        f"Prompts: {len(next(iter(data.values()))['content_preservation']) if data else 0} from `{settings['data']}` "
        f"({settings['split']} split, seed {settings['seed']}), {asked}, "
        f"track {settings['track'] if settings['track'] is not None else 'drawn per piece'}.",
        f"Metric definitions: {definitions}.",
        "Cells: mean ± std [95% bootstrap CI of the mean]; ↑ higher is better, ↓ lower is better. "
        "`original` is the ceiling; `copy` copies the neighbouring bars; `structure-copy` copies the bars whose other "
        "tracks best match the span's (the baseline to beat); `other-track` copies the best-matching other "
        "track, moved by octaves into the track's register; `silence` writes nothing (where it scores well, a metric "
        "rewards empty bars). Copy rate: the share of written bars with notes that equal a bar elsewhere in the song.",
        "",
        "## Musical similarity to the original bars",
        "",
        *_metric_table(data, systems, MUSIC),
        "",
        "## Control adherence (requested vs realised, per bar)",
        "",
        "Requested controls are the original bars' (for free systems too: the model was not given them).",
        "",
        *_metric_table(data, systems, controls),
        "",
        "## Paired tests",
        "",
        "Wilcoxon signed-rank on per-prompt differences (b − a), two-sided; p Holm-corrected across the metrics "
        "of each comparison; Cohen's d of the differences.",
        "",
        "| a | b | metric | n | mean b − a [95% CI] | W | p | p (Holm) | d |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b in comparisons(systems, [m for m in models if m in data]):
        for t in compare(tested, data[a], data[b]):
            label = {**MUSIC, **controls}[t.metric][0]
            lines.append(
                f"| {a} | {b} | {label} | {t.n} | {t.mean_difference:+.3f} [{t.ci[0]:+.3f}, {t.ci[1]:+.3f}] | "
                f"{t.statistic:.1f} | {t.p_value:.2g} | {t.p_holm:.2g} | {t.cohens_d:+.2f} |"
            )
    lines += _split_section(data, systems, [m for m in models if m in data])
    if seconds:
        lines += ["", "## Time per generation", ""]
        lines += [f"- {s}: {v:.2f} s (mean, one candidate, prompt included)" for s, v in seconds.items()]
    return "\n".join(lines) + "\n"


def _subset(data, prompts: set[str]) -> dict:
    return {s: {m: {p: v for p, v in per.items() if p in prompts} for m, per in metrics.items()}
            for s, metrics in data.items()}


def _split_section(data, systems: list[str], models: list[str]) -> list[str]:
    """The spans with a repeat elsewhere in the song (their best source window's other tracks match at least the
    structure's repeat threshold) and those without, each with its own table and paired tests."""
    flags = next((data[s]["has_repeat"] for s in systems if "has_repeat" in data[s]), None)
    if not flags:
        return []
    labels = {**MUSIC, **CONTROLS}
    lines = ["", "## Spans with and without a repeat", "",
             f"A span has a repeat when the window elsewhere in the song whose other tracks best match its own matches "
             f"at least {REPEAT_THRESHOLD} (midi_rwkv/structure). Paired tests as above, on each part alone."]
    for title, want in (("with a repeat", 1.0), ("without a repeat", 0.0)):
        prompts = {p for p, v in flags.items() if v == want}
        part = _subset(data, prompts)
        lines += ["", f"### Spans {title} ({len(prompts)})", "",
                  *_metric_table(part, systems, {m: labels[m] for m in SPLIT}), "",
                  "| a | b | metric | n | mean b − a [95% CI] | p (Holm) |", "|---|---|---|---:|---:|---:|"]
        if len(prompts) < 2:
            continue
        for a, b in comparisons(systems, models):
            for t in compare(SPLIT_TESTED, part[a], part[b]):
                lines.append(f"| {a} | {b} | {labels[t.metric][0]} | {t.n} | {t.mean_difference:+.3f} "
                             f"[{t.ci[0]:+.3f}, {t.ci[1]:+.3f}] | {t.p_holm:.2g} |")
    return lines


def plots(rows: list[dict], systems: list[str], out: Path) -> list[Path]:
    """metrics.png (distributions per system) and controls.png (density deltas, as the paper's Figures 3-6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = table(rows)
    systems = [s for s in systems if s in data]
    written = []
    labels = {**MUSIC, **CONTROLS, **TRACK_CONTROLS}
    names = [m for m in labels if any(m in data[s] for s in systems)]
    fig, axes = plt.subplots(2, math.ceil(len(names) / 2), figsize=(3.2 * math.ceil(len(names) / 2), 7))
    for ax, metric in zip(axes.flat, names):
        values = [[v for v in data[s].get(metric, {}).values() if not math.isnan(v)] for s in systems]
        ax.boxplot([v if v else [np.nan] for v in values], tick_labels=systems)
        label, better = labels[metric]
        ax.set_title(label + _arrow(better), fontsize=10)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    written.append(out / "metrics.png")
    atomic_write(written[-1], lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.arange(-12.5, 13.5, 1)
    for system in systems:
        deltas = [v for m, per in data[system].items() if m.startswith("density_delta_bar_") for v in per.values()]
        if deltas and system != "original":
            ax.hist(np.clip(deltas, -12, 12), bins=bins, histtype="step", linewidth=1.6, label=system, density=True)
    ax.set_xlabel("realised − requested notes per bar (clipped to ±12)")
    ax.set_ylabel("share of bars")
    ax.set_title("Note-density control: realised minus requested")
    if ax.get_legend_handles_labels()[0]:  # whole-track evaluations have no per-bar deltas
        ax.legend()
    fig.tight_layout()
    written.append(out / "controls.png")
    atomic_write(written[-1], lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return written


def write_report(
    rows: list[dict], models: list[str], references: list[str], settings: dict, faithful: bool, out: Path,
    skipped: dict[str, str] | None = None,
) -> Path:
    path = out / "summary.md"
    text = summary(rows, models, references, settings, faithful)
    if skipped:
        text += "\n## Skipped\n\nThese rows have no generation; their prompts leave that system's paired tests.\n\n"
        text += "".join(f"- {row}: {reason}\n" for row, reason in sorted(skipped.items()))
    atomic_write_text(path, text)
    plots(rows, models + references, out)
    return path
