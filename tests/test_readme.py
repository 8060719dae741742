"""The README's two set-up commands are the ones CI and users run."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    install_and_run, run_tests = _readme_commands()
    assert "pytest" in run_tests and "midi-rwkv" in install_and_run
    assert run_tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_runs():
    main_job = _readme_commands()[0].split("&&")[-1].split()
    assert main_job[0] == "midi-rwkv"
    done = subprocess.run([sys.executable, "-m", "midi_rwkv", *main_job[1:]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "FillBar_Start" in done.stdout
