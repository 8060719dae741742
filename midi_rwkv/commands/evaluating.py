"""``midi-rwkv evaluate``: infill held-out prompts with each system and measure them (see scripts/evaluate.sh)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from midi_rwkv.commands.options import add_settings, settings_from_args
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.metrics.evaluate import EvalConfig, Evaluation
from midi_rwkv.metrics.report import write_report
from midi_rwkv.metrics.systems import REFERENCES, TRACK_REFERENCES


def run_evaluate(args) -> int:
    config = settings_from_args(EvalConfig, args)
    start = time.perf_counter()
    evaluation = Evaluation(config, progress=not args.no_progress)
    rows = evaluation.run()
    names = [s.name for s in config.systems]
    path = write_report(rows, names, list(config.references), config.prompt_settings(), config.faithful, evaluation.out,
                        evaluation.skips)
    print(path.read_text())
    print(f"wrote {path} and results.csv, metrics.png, controls.png in {time.perf_counter() - start:.0f} s")
    return 0


def pooled_rows(folders: list[Path]) -> tuple[list[dict], dict]:
    """Every row of the evaluations in ``folders``, each prompt named by its folder (one prompt drawn with several seeds
    stays several prompts), and their common settings (seeds joined). Refuses evaluations that asked different things.
    """
    rows, settings = [], None
    for folder in folders:
        results, prompts = folder / "results.csv", folder / "prompts.json"
        if not results.is_file() or not prompts.is_file():
            raise MidiRwkvError(f"{folder}: not an evaluation folder (no results.csv and prompts.json)")
        these = json.loads(prompts.read_text())["settings"]
        asked = {k: v for k, v in these.items() if k not in ("seed", "prompts")}
        if settings is None:
            settings, first = dict(these, seed=str(these["seed"])), asked
        elif asked != first:
            raise MidiRwkvError(f"{folder} asks other things than {folders[0]} ({asked} vs {first})")
        else:
            settings["seed"] += f", {these['seed']}"
            settings["prompts"] += these["prompts"]
        with results.open() as f:
            rows += [dict(row, prompt=f"{folder.name}/{row['prompt']}") for row in csv.DictReader(f)]
    return rows, settings


def run_pool(args) -> int:
    folders = [Path(f) for f in args.evaluations]
    rows, settings = pooled_rows(folders)
    references = list(TRACK_REFERENCES if settings.get("mode") == "track" else REFERENCES)
    if args.system:
        rows = [row for row in rows if row["system"] in set(args.system) | set(references)]
    present = {row["system"] for row in rows}
    models = [s for s in dict.fromkeys(row["system"] for row in rows) if s not in references]
    missing = {f"{s} in {f}" for f in folders for s in models if not (f / "generations" / s).is_dir()}
    if missing:
        print(f"note: not every evaluation has every system ({', '.join(sorted(missing))}); tests pair what exists")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_report(rows, models, [r for r in references if r in present], settings, args.faithful, out)
    print(path.read_text())
    print(f"wrote {path}, metrics.png and controls.png from {len(folders)} evaluations")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="the paper's evaluation: infill held-out prompts, measure against the original bars, test the differences",
        description="Infill held-out prompts with each system, measure every generation against the original bars, "
        "and write results.csv, summary.md and plots. Re-running with the same --out skips finished generations.",
    )
    add_settings(p, EvalConfig)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.set_defaults(run=run_evaluate)
    p = sub.add_parser(
        "pool-evaluations",
        help="one report from several evaluations of the same setting (e.g. seeds 0, 1, 2: three times the prompts)",
        description="Pool the results.csv of several `midi-rwkv evaluate` folders that asked the same thing with other "
        "seeds (so other prompts), and write one summary.md with its paired tests and plots: more prompts, more power "
        "to tell two models apart.",
    )
    p.add_argument("evaluations", nargs="+", help="evaluation folders (midi-rwkv evaluate --out)")
    p.add_argument("--out", required=True, help="folder for the pooled summary.md and plots")
    p.add_argument("--system", action="append", help="only this system (repeatable; default: every one), with the "
                   "reference rows")
    p.add_argument("--faithful", action="store_true", help="the evaluations used --faithful (labels the report)")
    p.set_defaults(run=run_pool)
