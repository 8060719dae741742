"""A bench writes its own table into the document that shows it, so a table is never copied by hand.

The table lives between two marker lines, which Markdown does not render:

    <!-- bench/infill.py:begin -->
    | model | engine, threads | ... |
    <!-- bench/infill.py:end -->

A bench run with ``--write-doc docs/inference.md`` replaces what is between its markers with the table it just
printed; ``--block busy`` picks one of several blocks that the same bench writes (``<!-- bench/infill.py:busy:begin
-->``). Everything outside the block is left byte for byte. A shell bench pipes its table in
(``DOC=docs/training.md bench/train-e2e.sh`` does):

    python bench/docblock.py docs/training.md bench/train-e2e.sh < table.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from midi_rwkv.io import atomic_write_text


def markers(name: str) -> tuple[str, str]:
    """The begin and end lines of block ``name`` (e.g. ``bench/infill.py`` or ``bench/infill.py:busy``)."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def block_name(bench: str, label: str | None = None) -> str:
    """``bench/infill.py``, or ``bench/infill.py:LABEL`` for one of several blocks of the same bench."""
    return f"{bench}:{label}" if label else bench


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the lines between block ``name``'s markers replaced by ``content`` (one blank line each side).

    A marker counts only as a whole line (a marker quoted in prose is not one). Raises ValueError unless the block
    is there exactly once, its end after its begin.
    """
    begin, end = markers(name)
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1:
        raise ValueError(f"block {name!r}: needs one '{begin}' line and one '{end}' line, "
                         f"found {len(starts)} and {len(ends)}")
    first, last = starts[0], ends[0]
    if last < first:
        raise ValueError(f"block {name!r}: its end marker comes before its begin marker")
    body = "\n" + content.strip("\n") + "\n\n"
    return "".join(lines[: first + 1]) + body + "".join(lines[last:])


def write_block(path: str | Path, name: str, content: str) -> Path:
    """Replace block ``name`` of the document at ``path`` with ``content`` (written atomically)."""
    path = Path(path)
    return atomic_write_text(path, replace_block(path.read_text(), name, content))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--write-doc`` and ``--block`` options every bench that writes a document shares."""
    parser.add_argument("--write-doc", type=Path, metavar="PATH",
                        help="also write the table into this document's block for this bench (see bench/docblock.py)")
    parser.add_argument("--block", metavar="LABEL",
                        help="which of this bench's blocks in the document (default: the one without a label)")


def write_from_args(args: argparse.Namespace, bench: str, table: str) -> None:
    """Write ``table`` into ``args.write_doc``'s block for ``bench``, when ``--write-doc`` was given."""
    if args.write_doc:
        name = block_name(bench, args.block)
        write_block(args.write_doc, name, table)
        print(f"wrote the table into {args.write_doc} ({markers(name)[0]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="replace a document's bench block with the table read from stdin")
    parser.add_argument("doc", type=Path, help="the document, e.g. docs/training.md")
    parser.add_argument("name", help="the block, e.g. bench/train-e2e.sh (or bench/infill.py:busy)")
    args = parser.parse_args(argv)
    try:
        write_block(args.doc, args.name, sys.stdin.read())
    except (OSError, ValueError) as e:
        print(f"docblock: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
