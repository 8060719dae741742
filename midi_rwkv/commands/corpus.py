"""``midi-rwkv build-corpus``: the default model's pretraining corpus from ``../shared/data``, with a manifest."""

from __future__ import annotations

from pathlib import Path

from midi_rwkv.data.build_corpus import DEFAULT_SOURCES, SOURCES, SYNTHETIC, build
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write_json


def run_build_corpus(args) -> int:
    sources = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise MidiRwkvError(f"unknown sources {unknown}; choose from {list(SOURCES)}")
    manifest = build(Path(args.shared), Path(args.out), sources, args.workers, convert=not args.no_convert)
    atomic_write_json(Path(args.out) / args.manifest, manifest)
    for name, entry in manifest["summary"].items():
        print(f"{name:13s} {entry['pieces']:5d} pieces {entry['notes']:9,d} notes  "
              f"train/val/test {entry['train']}/{entry['validation']}/{entry['test']}  "
              f"failed {len(manifest['failures'].get(name, []))}")
    print(" ".join(manifest["data"]))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "build-corpus",
        help="build the default model's corpus from ../shared/data and music21's folk tunes (converted once), "
        "with a manifest",
        description="Convert the MusicXML sources and music21's ABC folk collections (one MIDI per tune) to MIDI once "
        "(an interrupted build resumes) and write manifest.json: source, licence, path, tracks, notes and split of "
        "every piece.",
    )
    p.add_argument("--shared", default="../shared/data", help="the shared data folder (default: %(default)s)")
    p.add_argument(
        "--out", default="runs/corpus", help="converted MIDI and manifest.json go here (default: %(default)s)"
    )
    p.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        help=f"comma-separated sources (default: %(default)s); synthetic, only when named: {', '.join(SYNTHETIC)} "
        "(Groove beats under POP909's and Nottingham's training songs, docs/data.md)",
    )
    p.add_argument("--workers", type=int, default=2, help="conversion processes (default: %(default)s)")
    p.add_argument(
        "--manifest",
        default="manifest.json",
        help="file name of the manifest in --out, e.g. manifest-folk.json for a build of some sources beside "
        "another (default: %(default)s)",
    )
    p.add_argument(
        "--no-convert", action="store_true", help="use the MusicXML and ABC sources only as far as already converted"
    )
    p.set_defaults(run=run_build_corpus)
