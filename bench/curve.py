"""CP and GS against tokens seen: the learning curve of a model lineage under one engine, and a projection.

    python bench/curve.py --eval runs/curve6-seed0 --eval runs/curve6-seed1 --eval runs/curve6-seed2 \\
        --point c4s600=35.3:target-last --point c4s4800=53.7:target-last ... --fit target-last --out docs/curve.png

Each ``--point NAME=TOKENS[:RUN]`` names an evaluation system (one checkpoint) and the tokens, in millions, that
its lineage had computed; RUN groups points in the plot. The evaluation folders must hold the same systems on
their own prompts (other seeds, say): every system is averaged over all their prompts, paired. The fit is least
squares over the points of ``--fit`` runs, both linear in tokens and linear in log tokens; the projection is the
tokens at which each line reaches the ``--baseline`` system's mean (``copy``), with the range that the slope's
standard error gives. Prints a markdown table and the fits; draws both metrics against tokens.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from midi_rwkv.metrics.stats import bootstrap_ci

METRICS = {"content_preservation": "CP", "groove_similarity": "GS"}


def read(folders: list[Path]) -> dict[tuple[str, str], dict[tuple[str, str], float]]:
    """(system, metric) -> (folder, prompt) -> value."""
    values: dict = defaultdict(dict)
    for folder in folders:
        for row in csv.DictReader(open(folder / "results.csv")):
            if row["metric"] in METRICS:
                values[row["system"], row["metric"]][str(folder), row["prompt"]] = float(row["value"])
    return values


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, standard error of b)."""
    design = np.stack([np.ones_like(x), x], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - (a + b * x)
    se = math.sqrt(residual @ residual / max(1, len(x) - 2) / max(1e-12, ((x - x.mean()) ** 2).sum()))
    return float(a), float(b), se


def reach(x0: float, y0: float, b: float, target: float, log: bool) -> float:
    """Tokens (millions) at which the line through (x0, y0) with slope b meets the target; inf if it never rises."""
    if b <= 0:
        return math.inf
    x = x0 + (target - y0) / b
    return math.exp(min(x, 700.0)) if log else x


def millions(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.0f}" if value < 1e5 else f"{value:.1e}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval", action="append", required=True, type=Path, help="evaluation folder (repeat)")
    p.add_argument("--point", action="append", required=True, help="SYSTEM=TOKENS_MILLIONS[:RUN] (repeat)")
    p.add_argument("--fit", action="append", default=[], help="runs whose points the fit uses (default: all)")
    p.add_argument("--baseline", default="copy", help="the system the projection aims at")
    p.add_argument("--line", action="append", default=[], help="another reference row to draw (e.g. silence)")
    p.add_argument("--out", type=Path, help="PNG to draw")
    args = p.parse_args()

    values = read(args.eval)
    points = []
    for spec in args.point:
        name, rest = spec.split("=", 1)
        tokens, _, run = rest.partition(":")
        points.append((name, float(tokens), run or "run"))
    runs = args.fit or sorted({run for *_, run in points})

    print("| checkpoint | run | tokens (M) | " + " | ".join(METRICS.values()) + " |")
    print("|---|---|---:|" + "---:|" * len(METRICS))
    means: dict[tuple[str, str], float] = {}
    for name, tokens, run in points:
        cells = []
        for metric in METRICS:
            v = np.array(list(values[name, metric].values()))
            if not len(v):
                raise SystemExit(f"no {metric} for system '{name}' in the evaluation folders")
            low, high = bootstrap_ci(v)
            means[name, metric] = float(np.nanmean(v))
            cells.append(f"{means[name, metric]:.3f} [{low:.3f}, {high:.3f}]")
        print(f"| {name} | {run} | {tokens:.1f} | " + " | ".join(cells) + " |")
    rows = {name: {m: float(np.nanmean(list(values[name, m].values()))) for m in METRICS}
            for name in [args.baseline, *args.line]}
    for name, row in rows.items():
        print(f"| {name} | | | " + " | ".join(f"{row[m]:.3f}" for m in METRICS) + " |")
    base = rows[args.baseline]

    chosen = [(n, t) for n, t, run in points if run in runs]
    x = np.array([t for _, t in chosen])
    print(f"\nfits over {len(chosen)} points of {', '.join(runs)} ({x.min():.1f}-{x.max():.1f} M tokens):")
    fits = {}
    for metric, label in METRICS.items():
        y = np.array([means[n, metric] for n, _ in chosen])
        for log in (False, True):
            xs = np.log(x) if log else x
            a, b, se = fit(xs, y)
            fits[metric, log] = (a, b)
            unit = math.log(2) if log else 10
            # the slope's uncertainty, pivoting about the points' centre (where the fit is surest)
            at = [reach(xs.mean(), y.mean(), b + k * se, base[metric], log) for k in (0, 1, -1)]
            print(f"  {label} {'log' if log else 'linear'}: {b * unit:+.4f} ± {se * unit:.4f} "
                  f"{'per doubling' if log else 'per 10 M tokens'}; reaches {args.baseline}'s {base[metric]:.3f} at "
                  f"{millions(at[0])} M tokens (slope ± 1 s.e.: {millions(at[1])} to {millions(at[2])})")
    if args.out:
        draw(points, means, rows, fits, runs, args.out)


def draw(points, means, rows, fits, runs, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(11, 4))
    colours = {run: f"C{i}" for i, run in enumerate(dict.fromkeys(run for *_, run in points))}
    for ax, (metric, label) in zip(axes, METRICS.items()):
        for run, colour in colours.items():
            xs = [t for n, t, r in points if r == run]
            ax.plot(xs, [means[n, metric] for n, t, r in points if r == run], "o-", color=colour, label=run)
        fitted = [t for _, t, r in points if r in runs]
        grid = np.linspace(min(fitted), max(fitted) * 1.5, 50)
        a, b = fits[metric, True]
        ax.plot(grid, a + b * np.log(grid), "--", color="grey", label="log fit")
        for (name, row), style in zip(rows.items(), ("-", ":", "-.")):
            ax.axhline(row[metric], color="black", lw=1, ls=style, label=name)
        ax.set_xlabel("tokens computed (millions)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
