"""``midi-rwkv evaluate``: infill held-out prompts with each system and measure them (see scripts/evaluate.sh)."""

from __future__ import annotations

import time

from midi_rwkv.commands.options import add_settings, settings_from_args
from midi_rwkv.metrics.evaluate import EvalConfig, Evaluation
from midi_rwkv.metrics.report import write_report


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
