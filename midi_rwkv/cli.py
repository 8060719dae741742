"""The ``midi-rwkv`` command: one entry point, one subcommand per task, errors as one line."""

from __future__ import annotations

import argparse
import sys

from midi_rwkv import __version__
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.commands import MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midi-rwkv",
        description="Controllable symbolic music infilling with RWKV-7 (MIDI-RWKV).",
        epilog="Run 'midi-rwkv COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"midi-rwkv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # a setting's own parser (e.g. --context) raises ours
        return args.run(args) or 0
    except MidiRwkvError as err:
        print(f"midi-rwkv: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("midi-rwkv: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
