"""The README's two set-up commands are the ones CI and users run."""

import re
import subprocess
import sys
from pathlib import Path

from symusic import Score

from midi_rwkv.tokenizer import InfillTokenizer

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    install_and_run, run_tests = _readme_commands()
    assert "pytest" in run_tests and "midi-rwkv" in install_and_run
    assert run_tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_infills_with_the_shipped_model(tmp_path):
    main_job = _readme_commands()[0].split("&&")[-1].split()
    assert main_job[:2] == ["midi-rwkv", "infill"]
    out = tmp_path / "infilled"
    argv = [sys.executable, "-m", "midi_rwkv", *main_job[1:], "-o", str(out), "--seed", "0"]  # the last -o wins
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "requested" in done.stdout and "realised" in done.stdout
    source = Score(str(ROOT / "tests" / "fixtures" / "bach_bwv66.6.mid"))
    piece = InfillTokenizer().prepare(source)
    start, end = piece.bars[2].start, piece.bars[3].end  # --bars 3:4, counted from 1
    written = sorted(out.glob("*.mid"))
    assert len(written) == 2
    for path in written:
        score = Score(str(path))
        new = [n for n in score.tracks[1].notes if start <= n.time < end]
        assert new and all(36 <= n.pitch <= 84 for n in new)  # music in a voice's range, not noise
        for a, b in zip(source.tracks, score.tracks):
            outside = lambda t: sorted((n.time, n.duration, n.pitch) for n in t.notes if not start <= n.time < end)  # noqa: E731
            assert outside(a) == outside(b)


def test_the_python_example_the_readme_links_runs(tmp_path, monkeypatch, capsys):
    """The Python API example in docs/inference.md (the README links it), as written, its output file moved."""
    assert "docs/inference.md#from-python" in (ROOT / "README.md").read_text()
    doc = (ROOT / "docs" / "inference.md").read_text()
    assert "\n## From Python\n\n```python\n" in doc  # the anchor the README links, right above the example
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(ROOT)
    exec(compile(code.replace("/tmp/candidate.mid", str(tmp_path / "candidate.mid")), "docs/inference.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.count("track 3, whole") == 2 and printed.count("new track, program 40") == 2
    written = Score(str(tmp_path / "candidate.mid"))
    assert len(written.tracks) == 5 and written.tracks[4].program == 40
