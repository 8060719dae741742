"""``midi-rwkv train`` (pretrain or continue training) and ``midi-rwkv export`` (a run's checkpoint as a model)."""

from __future__ import annotations

from pathlib import Path

from midi_rwkv.commands.options import add_settings, settings_from_args
from midi_rwkv.train.train_config import TrainConfig


def run_train(args) -> int:
    from midi_rwkv.train.pretrain import train  # imports Lightning (~3 s): only when training

    train(settings_from_args(TrainConfig, args), resume=args.resume, progress=not args.no_progress)
    return 0


def run_export(args) -> int:
    from midi_rwkv.train.export import export

    path = export(Path(args.run_dir), args.step, Path(args.output) if args.output else None)
    print(f"wrote {path}, its .json sidecar and {path.stem}.tokenizer.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="pretrain RWKV-7 on MIDI corpora (or continue a run with --resume)",
        description="Train RWKV-7 on bar- and track-infilling examples drawn from MIDI corpora; writes checkpoints, "
        "the loss curve and, at the end, OUT/model.pth with its tokenizer. scripts/train.sh is the recipe around it.",
    )
    add_settings(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.set_defaults(run=run_train)

    e = sub.add_parser(
        "export",
        help="write any checkpoint of a training run as a model (.pth + sidecar + tokenizer)",
        description="Training exports model.pth only when the run completes; this takes an intermediate (or the last) "
        "checkpoints/step-*.ckpt instead, e.g. to listen to a run in progress or to keep an earlier step.",
    )
    e.add_argument("run_dir", metavar="RUN", help="a training run folder (scripts/train.sh OUT)")
    e.add_argument("--step", type=int, help="checkpoint step (default: the last)")
    e.add_argument("-o", "--output", help="model .pth to write (default: RUN/model-step-N.pth)")
    e.set_defaults(run=run_export)
