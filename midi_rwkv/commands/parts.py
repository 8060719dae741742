"""``midi-rwkv split-model`` and ``join-model``: a model as parts of at most 16 MiB (what a GPU run can hand back)."""

from __future__ import annotations

import shutil
from pathlib import Path

from midi_rwkv.train.parts import find_manifest, join_parts, read_manifest, split_file


def _copy(src: Path, dst: Path) -> None:
    if src.resolve() != dst.resolve():  # joined into the parts' own folder: the file is already in place
        shutil.copyfile(src, dst)


def run_split(args) -> int:
    manifest = split_file(args.file, args.output, args.part_mib)
    parts = read_manifest(manifest)["parts"]
    print(f"wrote {len(parts)} part(s) of {Path(args.file).name} and {manifest}")
    return 0


def run_join(args) -> int:
    from midi_rwkv.model import load_checkpoint  # the model stack only when joining (imports torch)

    out = join_parts(args.parts, args.output)
    folder = find_manifest(args.parts).parent
    sidecar = folder / "model.json"  # scripts/gpu-run.sh brings the config sidecar back beside the parts
    if sidecar.is_file():
        _copy(sidecar, out.with_suffix(".json"))
    if args.tokenizer:
        _copy(Path(args.tokenizer), out.with_name(f"{out.stem}.tokenizer.json"))
    config = load_checkpoint(out).config  # a joined file that is no model says so now, not at infill time
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, sha256 verified): "
          f"{config.n_layer} x {config.n_embd} RWKV-7, vocabulary {config.vocab_size}")
    return 0


def register(sub) -> None:
    s = sub.add_parser(
        "split-model",
        help="write a file as parts of at most 16 MiB with a sha256 manifest (join-model puts it back)",
        description="Split FILE into FILE.part-000... of at most --part-mib MiB in the output folder, then write "
        "FILE.parts.json (sizes and sha256 of the whole and of every part). scripts/gpu-run.sh does this on the GPU "
        "machine, which hands back only files of up to 16 MiB.",
    )
    s.add_argument("file", help="the file to split (e.g. a run's model.pth)")
    s.add_argument("-o", "--output", required=True, help="folder for the parts and the manifest")
    s.add_argument("--part-mib", type=float, default=16, help="largest part in MiB (default: %(default)s)")
    s.set_defaults(run=run_split)

    j = sub.add_parser(
        "join-model",
        help="join a model's parts (from split-model or scripts/gpu-run.sh) into one .pth, sha256 verified",
        description="Check every part against its manifest, join them atomically, check the whole file's sha256, and "
        "load the result as a model. A model.json sidecar beside the parts is copied beside the output.",
    )
    j.add_argument("parts", help="the folder with the parts and their *.parts.json manifest (or the manifest)")
    j.add_argument("-o", "--output", required=True, help="the model to write, e.g. model.pth")
    j.add_argument("--tokenizer", help="a tokenizer to place beside the model as OUTPUT_STEM.tokenizer.json")
    j.set_defaults(run=run_join)
