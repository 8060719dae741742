"""bench/docblock.py: a bench writes its table into its marked block of a document, and nothing else of it."""

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # the benches import docblock as their neighbour
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


docblock = _load("docblock")

DOC = """# Speed

Before, with `<!-- bench/infill.py:begin -->` quoted in prose (not a marker).

<!-- bench/infill.py:begin -->

| old | table |
|---|---|
| 1 | 2 |

<!-- bench/infill.py:end -->

Between.

<!-- bench/infill.py:busy:begin -->
| busy | old |
<!-- bench/infill.py:busy:end -->

After.
"""


def _outside(text: str, name: str) -> tuple[str, str]:
    begin, end = docblock.markers(name)
    before, rest = text.split(f"\n{begin}\n", 1)
    return before, rest.split(f"\n{end}\n", 1)[1]


def test_the_block_gets_the_new_table_and_everything_outside_it_stays_byte_for_byte():
    new = docblock.replace_block(DOC, "bench/infill.py", "| new | table |\n|---|---|\n| 3 | 4 |\n")
    assert "| new | table |\n|---|---|\n| 3 | 4 |" in new
    assert "| old | table |" not in new and "| 1 | 2 |" not in new
    assert _outside(new, "bench/infill.py") == _outside(DOC, "bench/infill.py")
    assert "<!-- bench/infill.py:begin -->\n\n| new | table |" in new  # one blank line each side
    assert "| 3 | 4 |\n\n<!-- bench/infill.py:end -->" in new


def test_writing_the_same_table_twice_changes_nothing_more():
    once = docblock.replace_block(DOC, "bench/infill.py", "\n\n| t |\n\n")
    assert docblock.replace_block(once, "bench/infill.py", "| t |") == once


def test_a_labelled_block_is_written_alone():
    new = docblock.replace_block(DOC, docblock.block_name("bench/infill.py", "busy"), "| busy | new |")
    assert "| busy | new |" in new and "| busy | old |" not in new
    assert "| old | table |" in new  # the unlabelled block of the same bench is untouched
    assert _outside(new, "bench/infill.py:busy") == _outside(DOC, "bench/infill.py:busy")


@pytest.mark.parametrize(
    "text, why",
    [
        ("no block here\n", "found 0 and 0"),
        (DOC + "<!-- bench/infill.py:begin -->\n<!-- bench/infill.py:end -->\n", "found 2 and 2"),
        ("<!-- bench/infill.py:end -->\nx\n<!-- bench/infill.py:begin -->\n", "before its begin"),
        ("text `<!-- bench/infill.py:begin -->` and `<!-- bench/infill.py:end -->`\n", "found 0 and 0"),
    ],
    ids=["missing", "twice", "end-before-begin", "quoted-in-prose-only"],
)
def test_a_block_that_is_not_there_exactly_once_is_refused(text, why):
    with pytest.raises(ValueError, match=why):
        docblock.replace_block(text, "bench/infill.py", "| x |")


def test_write_block_and_the_command_line_replace_the_block_of_a_file(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    docblock.write_block(doc, "bench/infill.py", "| a |")
    assert "| a |" in doc.read_text() and "| old | table |" not in doc.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("| from | stdin |\n"))
    assert docblock.main([str(doc), "bench/infill.py:busy"]) == 0
    assert "| from | stdin |" in doc.read_text() and "| busy | old |" not in doc.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("| x |\n"))
    assert docblock.main([str(doc), "bench/nothing.py"]) == 2
    assert "docblock: error: block 'bench/nothing.py'" in capsys.readouterr().err


def test_write_doc_writes_only_when_asked(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    parser = docblock.argparse.ArgumentParser()
    docblock.add_arguments(parser)
    docblock.write_from_args(parser.parse_args([]), "bench/infill.py", "| never |")
    assert doc.read_text() == DOC
    args = parser.parse_args(["--write-doc", str(doc), "--block", "busy"])
    docblock.write_from_args(args, "bench/infill.py", "| b |")
    assert "| b |" in doc.read_text() and "| old | table |" in doc.read_text()


BLOCK = re.compile(r"^<!-- (bench/[\w.-]+)((?::\w+)?):begin -->$", re.M)


def _blocks():
    found = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        found += [(doc, bench, label) for bench, label in BLOCK.findall(doc.read_text())]
    return found


def test_every_bench_block_in_the_docs_belongs_to_a_bench_that_writes_it():
    blocks = _blocks()
    assert {bench for _, bench, _ in blocks} >= {"bench/infill.py", "bench/studio.py", "bench/context.py",
                                                  "bench/train-e2e.sh"}
    for doc, bench, label in blocks:
        source = (ROOT / bench).read_text()
        assert f'"{bench}"' in source or f"bench/docblock.py \"$DOC\" {bench}" in source, (doc.name, bench)
        docblock.replace_block(doc.read_text(), bench + label, "| x |")  # there exactly once, in order


def test_the_infill_bench_writes_the_table_the_doc_shows():
    infill = _load("infill")
    doc = (ROOT / "docs" / "inference.md").read_text()
    # the newest block the bench wrote (the older ones keep the columns of their day)
    block = doc.split("<!-- bench/infill.py:shared:begin -->", 1)[1].split("<!-- bench/infill.py:shared:end -->", 1)[0]
    header = next(line for line in block.splitlines() if line.startswith("| model"))
    row = dict(zip(infill.COLUMNS, (10867.2, 141.4, 655.0, 1.584, 4.123)), model="small (6 x 128)", engine="PyTorch, 2")
    table = infill.table([row, {**row, "engine": "GGML f16, 1", "load average": None}]).splitlines()
    assert table[0] == header
    assert table[2] == "| small (6 x 128) | PyTorch, 2 | 10,867 | 141 | 655 | 1.58 s | 4.12 |"
    assert table[3].startswith("| | GGML f16, 1 | ") and table[3].endswith(" | ? |")  # the model named once
