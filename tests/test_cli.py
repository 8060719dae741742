import subprocess
import sys

import pytest

from midi_rwkv.cli import main
from midi_rwkv.commands.options import parse_bars
from tests.conftest import FIXTURES

CHORALE = str(FIXTURES / "bach_bwv66.6.mid")


def test_prompt_prints_the_infill_prompt(capsys):
    assert main(["prompt", CHORALE, "--track", "1", "--bars", "3:4", "--context", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("Track_Start") == 4 and "FillBar_Start" in out and "Infill_Bar Infill_Bar" in out
    assert "bars 3-4 of 9" in out
    # the shipped model's layout unless --layout names one: the alto before or after the bass
    for layout in ("file-order", "target-last"):
        assert main(["prompt", CHORALE, "--track", "1", "--bars", "3:4", "--layout", layout]) == 0
        out = capsys.readouterr().out
        last_track = out[out.rindex("Track_Start") : out.index("FillBar_Start")]
        assert ("Infill_Bar" in last_track) == (layout == "target-last") and f"layout {layout}" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["prompt", str(FIXTURES / "corrupt_truncated.mid"), "--track", "0", "--bars", "1:2"],
            "not a readable MIDI file",
        ),
        (["prompt", str(FIXTURES / "no_notes.mid"), "--track", "0", "--bars", "1:2"], "has no notes"),
        (["prompt", CHORALE, "--track", "7", "--bars", "1:2"], "track 7 does not exist"),
        (["prompt", CHORALE, "--track", "0", "--bars", "8:12"], "outside the piece"),
        (["prompt", CHORALE, "--track", "0", "--bars", "4:2"], "FIRST <= LAST"),
        (["prompt", CHORALE, "--track", "0", "--bars", "x"], "expected FIRST:LAST"),
        (["prompt", CHORALE, "--track", "0", "--bars", "1:2", "--tokenizer", "/nonexistent.json"], "not found"),
    ],
    ids=["corrupt", "no-notes", "track", "bars-outside", "bars-reversed", "bars-syntax", "tokenizer"],
)
def test_bad_input_gives_one_error_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("midi-rwkv: error:") and message in err


def test_parse_bars_counts_from_one_inclusive():
    assert parse_bars("9:12") == (8, 12)
    assert parse_bars("3") == (2, 3)


def test_console_script_help_and_train_tokenizer(tmp_path):
    out = tmp_path / "tok.json"
    run = subprocess.run(
        [sys.executable, "-m", "midi_rwkv", "train-tokenizer", str(FIXTURES), "-o", str(out), "--vocab-size", "700"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert out.exists() and '"tokenized": 1' in run.stdout and '"MidiFileError": 3' in run.stdout
    for command in ([], ["prompt"], ["train-tokenizer"], ["check-data"]):
        helped = subprocess.run([sys.executable, "-m", "midi_rwkv", *command, "--help"], capture_output=True, text=True)
        assert helped.returncode == 0 and "usage:" in helped.stdout


def test_check_data_reports_counts(capsys):
    assert main(["check-data", str(FIXTURES), "--max-len", "512"]) == 0
    out = capsys.readouterr().out
    assert '"files": 5' in out and '"examples"' in out and '"MidiFileError": 3' in out
