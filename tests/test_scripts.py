"""The shell pipelines run end to end (their CPU smoke variants)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell has after ``pip install -e .``: this interpreter's bin first on PATH,
    so ``python`` and ``midi-rwkv`` in the scripts are the ones under test, activated venv or not."""
    bin_dir = str(Path(sys.executable).parent)
    return os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")} | extra


@pytest.mark.slow
def test_train_sh_smoke_run(tmp_path):
    out = tmp_path / "run"
    env = script_env(SMOKE="1", OUT=str(out))
    done = subprocess.run(["bash", "scripts/train.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in (
        "model.pth",
        "model.json",
        "tokenizer.json",
        "bpe.json",
        "loss.csv",
        "loss.png",
        "config.json",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    assert stat.S_IMODE((out / "model.pth").stat().st_mode) & 0o044  # readable by others, as the umask allows
    again = subprocess.run(["bash", "scripts/train.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "already holds a run" in again.stderr  # never overwrites a run
    # an intermediate checkpoint exports to the same weights format; the last one equals model.pth
    from midi_rwkv.model import load_checkpoint
    from midi_rwkv.train.export import export

    step2 = export(out, step=2)
    last = export(out)
    assert step2.name == "model-step-2.pth" and (out / "model-step-2.tokenizer.json").is_file()
    final, exported = load_checkpoint(out / "model.pth"), load_checkpoint(last)
    assert all((a == b).all() for a, b in zip(final.state_dict().values(), exported.state_dict().values()))
