"""``midi-rwkv train`` (pretrain or continue training), ``midi-rwkv export`` (a run's checkpoint as a model) and
``midi-rwkv save-lineage`` (a run as a folder to commit, which ``train --resume-from`` continues on any machine)."""

from __future__ import annotations

from pathlib import Path

from midi_rwkv.commands.options import add_settings, given_settings
from midi_rwkv.train.train_config import TrainConfig


def run_train(args) -> int:
    from midi_rwkv.train.pretrain import train  # imports Lightning (~3 s): only when training

    given = given_settings(TrainConfig, args)
    if args.resume_from:  # the lineage's recorded settings are the defaults
        from midi_rwkv.train.lineage import continue_config

        config = continue_config(args.resume_from, given)
    else:
        config = TrainConfig(**given)
    train(config, resume=args.resume, progress=not args.no_progress)
    return 0


def run_save_lineage(args) -> int:
    from midi_rwkv.train.lineage import check_name, read_lineage, save_lineage

    folder = save_lineage(Path(args.run_dir), Path(args.out) / check_name(args.name), replace=args.replace)
    state = read_lineage(folder)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"saved {args.run_dir} at step {state['step']} of {state['total_steps']} to {folder} ({size / 1e6:.1f} MB); "
          f"commit it: git add {folder}")
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

    s = sub.add_parser(
        "save-lineage",
        help="save a training run as a lineage folder to commit (bf16 weights, settings, loss history, step)",
        description="Write the run's latest checkpoint as OUT/NAME: bf16 weights with their sidecar and tokenizer "
        "(a model file for --model), the resolved settings, the whole loss history and state.json (step, schedule "
        "position, tokens seen, weights sha256). The folder is replaced as a whole and holds at most 32 MB. "
        "'midi-rwkv train --out NEW --resume-from OUT/NAME' continues it on any machine.",
    )
    s.add_argument("run_dir", metavar="RUN", help="a training run folder (scripts/train.sh OUT), finished or not")
    s.add_argument("--name", required=True, help="the lineage's name: one folder name, e.g. 8x256")
    s.add_argument("--out", default="lineage", help="the folder of lineages (default: lineage)")
    s.add_argument("--replace", action="store_true",
                   help="start lineage NAME over with this run even if the run does not continue it")
    s.set_defaults(run=run_save_lineage)
