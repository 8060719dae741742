"""How much context helps: content preservation and groove similarity against the prompt's length.

    python bench/context.py                      # 24 prompts from long pieces of music21_poly's test split
    python bench/context.py --prompts 40 --data folder:../shared/data/music21_poly --min-bars 120
    python bench/context.py --min-bars 48 --write-doc docs/inference.md --block music21   # and into the document

Runs one `midi-rwkv evaluate` (resumable) whose systems differ only in their context: 4 and 16 bars on each side,
then 2k, 4k, 8k and 16k tokens widened evenly around the span, then the whole song. Prints a markdown table:
mean prompt tokens, CP and GS with 95 % bootstrap intervals, and seconds per candidate.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from midi_rwkv.cli import main as cli
from midi_rwkv.metrics.stats import bootstrap_ci

import docblock  # bench/docblock.py, beside this file

SYSTEMS = ["bars4:context=4", "bars16:context=16", "tok2k:context=all,context_tokens=2048",
           "tok4k:context=all,context_tokens=4096", "tok8k:context=all,context_tokens=8192",
           "tok16k:context=all,context_tokens=16384", "song:context=all"]


def table(out: Path) -> str:
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in csv.DictReader(open(out / "results.csv")):
        values[row["system"], row["metric"]].append(float(row["value"]))
    lines = ["| context | prompt tokens (mean) | CP | GS | s per candidate |", "|---|---:|---:|---:|---:|"]
    for spec in SYSTEMS + ["copy", "original"]:
        name = spec.split(":")[0]
        metas = [json.loads(p.read_text()) for p in sorted((out / "generations" / name).glob("*.json"))]
        tokens = np.mean([m.get("prompt_tokens", 0) for m in metas]) if metas else float("nan")
        cells = []
        for metric in ("content_preservation", "groove_similarity"):
            v = values[name, metric]
            low, high = bootstrap_ci(v)
            cells.append(f"{np.nanmean(v):.3f} [{low:.3f}, {high:.3f}]")
        seconds = np.mean(values[name, "seconds"])
        lines.append(f"| {name} | {tokens:,.0f} | {cells[0]} | {cells[1]} | {seconds:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-context", help="evaluation folder (resumable)")
    p.add_argument("--data", default="folder:../shared/data/music21_poly", help="corpus of long multi-track pieces")
    p.add_argument("--prompts", type=int, default=24, help="prompts, one per piece")
    p.add_argument("--min-bars", type=int, default=120, help="only pieces with at least this many bars")
    p.add_argument("--model", help="model .pth (default: the shipped one)")
    docblock.add_arguments(p)
    args = p.parse_args()
    argv = ["evaluate", "--out", args.out, "--data", args.data, "--prompts", str(args.prompts), "--track", "random",
            "--context", "64", "--min-bars", str(args.min_bars), "--no-progress"]
    argv += [a for s in SYSTEMS for a in ("--system", s)] + (["--model", args.model] if args.model else [])
    if cli(argv) != 0:
        raise SystemExit("the evaluation failed")
    text = f"`{args.data}`, pieces of at least {args.min_bars} bars, {args.prompts} prompts:\n\n{table(Path(args.out))}"
    print(text)
    docblock.write_from_args(args, "bench/context.py", text)


if __name__ == "__main__":
    main()
