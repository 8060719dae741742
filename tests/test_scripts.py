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


@pytest.mark.slow
def test_train_sh_on_two_processes_matches_one_process_with_the_same_global_batch(tmp_path, tok):
    """Lightning DDP over gloo, 2 CPU processes x batch 1, against 1 process x batch 2: the same examples, so the
    same losses and (to float noise) the same weights."""
    import csv

    import torch

    from midi_rwkv.model import load_checkpoint

    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / f"c{i}.mid").write_bytes((ROOT / "tests" / "fixtures" / "bach_bwv66.6.mid").read_bytes())
    tok.save(tmp_path / "tok.json")
    knobs = dict(DATA=f"folder:{data}", TOKENIZER=str(tmp_path / "tok.json"), PRESET="tiny", CTX_LEN="256", STEPS="4",
                 VAL_EVERY="2", CKPT_EVERY="2", WARMUP="1", LR="3e-3", LR_FINAL="1e-4", ACCELERATOR="cpu", WORKERS="0",
                 PRECISION="32-true")  # fp32: bf16 rounding differs with the batch shapes
    runs = {"one": dict(BATCH="2", DEVICES="1", STRATEGY="auto"), "two": dict(BATCH="1", DEVICES="2", STRATEGY="ddp")}
    losses = {}
    for name, extra in runs.items():
        env = script_env(OUT=str(tmp_path / name), **knobs, **extra)
        done = subprocess.run(["bash", "scripts/train.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        with (tmp_path / name / "loss.csv").open() as f:
            losses[name] = [(int(r["step"]), float(r["train_loss"]), r["val_loss"]) for r in csv.DictReader(f)]
    assert [s for s, _, _ in losses["two"]] == [1, 2, 3, 4]
    for (s1, a, va), (s2, b, vb) in zip(losses["one"], losses["two"]):
        assert a == pytest.approx(b, rel=1e-4), s1
        assert (va == "") == (vb == "") and (va == "" or float(va) == pytest.approx(float(vb), rel=1e-4)), s1
    one, two = load_checkpoint(tmp_path / "one" / "model.pth"), load_checkpoint(tmp_path / "two" / "model.pth")
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=2e-3), name  # bf16 weights on disk
