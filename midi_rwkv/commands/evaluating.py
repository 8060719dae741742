"""``python -m midi_rwkv.metrics``: evaluate models on held-out prompts (see scripts/evaluate.sh)."""

from __future__ import annotations

import argparse
import sys
import time

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.metrics.evaluate import EvalConfig, Evaluation
from midi_rwkv.metrics.report import write_report
from midi_rwkv.metrics.systems import parse_system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m midi_rwkv.metrics",
        description="Infill held-out prompts with each system, measure every generation against the original bars, "
        "and write results.csv, summary.md and plots. Re-running with the same --out skips finished generations.",
    )
    parser.add_argument("--out", required=True, help="report folder (generations, results.csv, summary.md, plots)")
    parser.add_argument("--data", default="pop909:../shared/data/pop909", help="corpus spec (default: %(default)s)")
    parser.add_argument("--model", default="midi_rwkv.pth", help="default model for systems (default: %(default)s)")
    parser.add_argument("--system", action="append", metavar="NAME[:key=value,...]",
                        help="a system to evaluate; keys: model tokenizer state lora free engine (torch, ggml, ggml-f32) temperature top_k top_p epsilon "
                        "repetition_penalty (default: 'model' and 'free:free=1')")
    parser.add_argument("--tokenizer", help="tokenizer for choosing prompts (default: the first system's)")
    parser.add_argument("--prompts", type=int, default=40, help="prompts, one per piece (default: %(default)s)")
    parser.add_argument("--bars", type=int, default=4, help="bars to infill, N (default: %(default)s)")
    parser.add_argument("--context", type=int, default=16, help="bars of context on each side, C (default: %(default)s)")
    parser.add_argument("--track", default="0", help="track to infill, or 'random' for one per piece (default: 0, POP909's melody)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test", "all"],
                        help="split to draw from, as training splits the corpus, or all pieces (default: test)")
    parser.add_argument("--seed", type=int, default=0, help="prompt and sampling seed (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=2000, help="token limit per generation (default: %(default)s)")
    parser.add_argument("--faithful", action="store_true", help="the original release's metric definitions (silence scores 0, ...)")
    parser.add_argument("--no-references", action="store_true", help="leave out the 'original' and 'copy' rows")
    args = parser.parse_args(argv)
    try:
        systems = [parse_system(text, args.model) for text in (args.system or ["model", "free:free=1"])]
        names = [s.name for s in systems]
        if len(set(names)) != len(names):
            raise MidiRwkvError(f"system names must be unique: {names}")
        track = None if args.track == "random" else int(args.track)
        config = EvalConfig(args.out, systems, args.data, args.tokenizer, args.prompts, args.bars, args.context, track,
                            args.split, args.seed, args.max_tokens, args.faithful, () if args.no_references else ("original", "copy"))
        start = time.perf_counter()
        evaluation = Evaluation(config)
        rows = evaluation.run()
        path = write_report(rows, names, list(config.references), config.prompt_settings(), args.faithful, evaluation.out)
    except (MidiRwkvError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path.read_text())
    print(f"wrote {path} and results.csv, metrics.png, controls.png in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
