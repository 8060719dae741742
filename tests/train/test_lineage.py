"""A lineage folder: saved from a run (bf16, history, state, size cap, atomic), continued from on a new run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from midi_rwkv.cli import main
from midi_rwkv.io import file_sha256
from midi_rwkv.model import load_checkpoint
from midi_rwkv.model.checkpoint import open_model
from midi_rwkv.train import lineage as lineage_module
from midi_rwkv.train.callbacks import read_loss_csv
from midi_rwkv.train.lineage import LineageError, continue_config, save_lineage, tokens_seen
from midi_rwkv.train.module import OptimConfig, RWKVLightning, lr_multiplier, schedule_multiplier
from midi_rwkv.train.pretrain import train
from midi_rwkv.train.train_config import TrainConfig
from tests.conftest import FIXTURES

SETTINGS = {"data": [f"folder:{FIXTURES}"], "preset": "tiny", "ctx_len": 128, "batch_size": 1, "steps": 6,
            "val_every": 3, "val_batches": 1, "ckpt_every": 2, "workers": 0, "warmup_steps": 2, "lr_init": 3e-3,
            "lr_final": 1e-4, "threads": 1, "seed": 5}
SCHEDULE = OptimConfig(lr_init=3e-3, lr_final=1e-4, warmup_steps=2, total_steps=6)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A run stopped at step 3 of 6, saved as lineage/tiny."""
    root = tmp_path_factory.mktemp("parent")
    train(TrainConfig(out=str(root / "run"), **SETTINGS), progress=False, stop_after=3)
    save_lineage(root / "run", root / "lineage" / "tiny")
    return root


@pytest.fixture(scope="module")
def continued(parent, tmp_path_factory):
    """A copy of the lineage, continued by a new run to the end of its schedule (warm-up 1) and saved again."""
    root = tmp_path_factory.mktemp("continued")
    shutil.copytree(parent / "lineage" / "tiny", root / "tiny")
    before = {"state": json.loads((root / "tiny" / "state.json").read_text()),
              "rows": read_loss_csv(root / "tiny" / "loss.csv")}
    first_weights, steps = {}, []
    original = RWKVLightning.training_step

    def recording_step(self, batch, batch_idx):
        if not steps:
            first_weights.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        steps.append(self.trainer.global_step)
        return original(self, batch, batch_idx)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RWKVLightning, "training_step", recording_step)
        config = continue_config(root / "tiny", {"out": str(root / "run"), "warmup_steps": 1})
        train(config, progress=False)
    save_lineage(root / "run", root / "tiny")
    return root, before, first_weights, steps


def test_saved_lineage_holds_bf16_weights_settings_history_and_state(parent):
    run, folder = parent / "run", parent / "lineage" / "tiny"
    names = {p.name for p in folder.iterdir()}
    assert {"model.pth", "model.json", "model.tokenizer.json", "config.json", "loss.csv", "state.json"} <= names
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]  # no temporary folder left beside it
    state = json.loads((folder / "state.json").read_text())
    assert (state["step"], state["total_steps"], state["seed"], state["data_seed"]) == (3, 6, 5, 5)
    assert state["schedule"]["lr"] == pytest.approx(3e-3 * schedule_multiplier(3, SCHEDULE))
    assert state["schedule"]["progress"] == 0.5 and state["schedule"]["warmup_steps"] == 2
    assert state["weights"]["sha256"] == file_sha256(folder / "model.pth")
    assert state["tokenizer"]["sha256"] == file_sha256(run / "tokenizer.json")
    assert state["tokens"]["exact"] and 0 < state["tokens"]["real"] <= state["tokens"]["computed"]
    assert [(s["from_step"], s["to_step"]) for s in state["segments"]] == [(0, 3)]
    assert json.loads((folder / "config.json").read_text()) == json.loads((run / "config.json").read_text())
    assert read_loss_csv(folder / "loss.csv") == read_loss_csv(run / "loss.csv")
    assert [r["step"] for r in read_loss_csv(folder / "loss.csv")] == [1, 2, 3]
    # bf16 on disk, plain tensors; loading upcasts to the run's weights rounded to bf16
    stored = torch.load(folder / "model.pth", weights_only=True)
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.bfloat16}
    ckpt = torch.load(run / "checkpoints" / "step-0000003.ckpt", weights_only=True)["state_dict"]
    model, _, _ = open_model(folder / "model.pth")  # a model file, its tokenizer beside it
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, ckpt[f"model.{name}"].to(torch.bfloat16).float()), name


def test_continuing_starts_from_the_lineage_on_its_schedule_and_appends_its_history(continued):
    root, before, _, steps = continued
    assert steps == [0, 1, 2]  # three steps of its own: the lineage's 4th to 6th
    parent_run = json.loads((root / "run" / "origin.json").read_text())
    assert parent_run["start_step"] == 3 and parent_run["data_seed"] == 5 + 3  # new examples, recorded
    assert parent_run["weights_sha256"] == before["state"]["weights"]["sha256"]
    rows = read_loss_csv(root / "run" / "loss.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[:3] == before["rows"]  # the run's loss.csv starts as the lineage's history
    # warm-up over 1 step from 1% of the schedule's rate, then exactly the schedule an uninterrupted run follows
    assert rows[3]["lr"] == pytest.approx(0.01 * 3e-3 * schedule_multiplier(3, SCHEDULE))
    for row in rows[4:]:
        assert row["lr"] == pytest.approx(3e-3 * schedule_multiplier(row["step"] - 1, SCHEDULE)), row["step"]
    assert all(b["tokens"] > a["tokens"] for a, b in zip(rows, rows[1:]))  # counting on from the lineage's tokens
    assert {p.name for p in (root / "run" / "checkpoints").glob("*.ckpt")} == {"step-0000004.ckpt",
                                                                               "step-0000006.ckpt"}
    assert json.loads((root / "run" / "model.json").read_text())["steps"] == 6
    state = json.loads((root / "tiny" / "state.json").read_text())
    assert state["step"] == 6 and state["schedule"]["progress"] == 1.0
    assert [(s["from_step"], s["to_step"], s["data_seed"]) for s in state["segments"]] == [(0, 3, 5), (3, 6, 8)]
    assert state["tokens"]["computed"] == rows[-1]["tokens"] and state["tokens"]["exact"]
    assert read_loss_csv(root / "tiny" / "loss.csv") == rows


def test_continuation_starts_from_the_lineage_weights(parent, continued):
    _, _, first_weights, _ = continued
    saved = load_checkpoint(parent / "lineage" / "tiny" / "model.pth").float()  # step 3, as the copy held it
    for name, value in saved.state_dict().items():
        assert first_weights[name].dtype == torch.float32
        assert torch.equal(first_weights[name], value), name


def test_settings_default_to_the_lineage_and_a_mismatch_is_one_error_line(parent, tmp_path, capsys):
    folder = parent / "lineage" / "tiny"
    config = continue_config(folder, {"out": str(tmp_path / "next")})
    assert (config.preset, config.data, config.seed, config.steps, config.lr_init) == ("tiny", SETTINGS["data"], 5, 6,
                                                                                       3e-3)
    assert config.tokenizer == str(folder / "model.tokenizer.json") and config.resume_from == str(folder)
    assert config.warmup_steps == 10  # the fresh optimiser's warm-up: this run's own, not inherited
    base = ["train", "--out", str(tmp_path / "next"), "--resume-from", str(folder)]
    cases = {
        "does not match": ["--preset", "small"],
        "is not": ["--tokenizer", str(FIXTURES / "original_release_tokenizer.json")],
        "--steps above 3": ["--steps", "3"],
        "choose one": ["--init", str(folder / "model.pth")],
    }
    for message, extra in cases.items():
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("midi-rwkv: error:") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "next").exists()  # refused before anything was written


def test_a_failed_or_oversized_save_leaves_the_previous_lineage_whole(parent, tmp_path, monkeypatch):
    folder = tmp_path / "lineages" / "tiny"
    shutil.copytree(parent / "lineage" / "tiny", folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(lineage_module, "MAX_BYTES", 100_000)
    with pytest.raises(LineageError, match="over the 0.1 MB"):
        save_lineage(parent / "run", folder)
    monkeypatch.undo()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(lineage_module, "tokens_seen", broken)  # fails after the weights were written
    with pytest.raises(RuntimeError):
        save_lineage(parent / "run", folder)
    with pytest.raises(RuntimeError):
        save_lineage(parent / "run", tmp_path / "lineages" / "new")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]  # no half folder, no temporary one


def test_only_a_run_that_continues_the_lineage_may_replace_it(parent, tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(parent / "lineage" / "tiny", folder)
    other = tmp_path / "other-run"
    shutil.copytree(parent / "run", other)
    origin = json.loads((other / "origin.json").read_text())
    (other / "origin.json").write_text(json.dumps(origin | {"run_id": "another"}))
    with pytest.raises(LineageError, match="does not continue"):
        save_lineage(other, folder)
    save_lineage(parent / "run", folder)  # the run saved there last, saved again: its segment replaced
    assert len(json.loads((folder / "state.json").read_text())["segments"]) == 1
    save_lineage(other, folder, replace=True)
    assert json.loads((folder / "state.json").read_text())["segments"][0]["run_id"] == "another"
    (tmp_path / "plain").mkdir()
    with pytest.raises(LineageError, match="not a lineage"):  # never replaces a folder that is not a lineage
        save_lineage(parent / "run", tmp_path / "plain", replace=True)


def test_save_lineage_command(parent, tmp_path, capsys):
    assert main(["save-lineage", str(parent / "run"), "--name", "t1", "--out", str(tmp_path)]) == 0
    assert "at step 3 of 6" in capsys.readouterr().out and (tmp_path / "t1" / "state.json").is_file()
    assert main(["save-lineage", str(parent / "run"), "--name", "../t2", "--out", str(tmp_path)]) == 2
    assert main(["save-lineage", str(tmp_path), "--name", "t3", "--out", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_rewarmup_ramps_to_the_schedule_then_follows_it():
    config = OptimConfig(lr_init=1e-3, lr_final=1e-4, warmup_steps=10, total_steps=110, start_step=50,
                         rewarmup_steps=5)
    assert lr_multiplier(0, config) == pytest.approx(0.01 * schedule_multiplier(50, config))
    for step in range(5, 60):
        assert lr_multiplier(step, config) == schedule_multiplier(50 + step, config)
    assert schedule_multiplier(60, config) == pytest.approx(0.55)


def test_tokens_are_estimated_for_runs_that_did_not_count_them():
    rows = [{"step": 1, "tok_s": None, "step_s": None}, {"step": 2, "tok_s": 100.0, "step_s": 2.0, "real_tok_s": 50.0},
            {"step": 3, "tok_s": 300.0, "step_s": 1.0, "real_tok_s": 150.0}]
    assert tokens_seen(rows, 3, {}) == {"computed": 750, "real": 375, "exact": False}
    counted = [{"step": 1, "tokens": 10.0, "real_tokens": 8.0}, {"step": 2, "tokens": 30.0, "real_tokens": 20.0}]
    assert tokens_seen(counted, 2, {}) == {"computed": 30, "real": 20, "exact": True}


def test_a_run_from_before_lineages_is_saved_with_estimated_tokens(parent, tmp_path):
    """No origin.json and a loss.csv without token counts (a run started by an older midi-rwkv)."""
    old = tmp_path / "old-run"
    shutil.copytree(parent / "run", old)
    (old / "origin.json").unlink()
    lines = (old / "loss.csv").read_text().splitlines()
    (old / "loss.csv").write_text("\n".join(",".join(line.split(",")[:7]) for line in lines) + "\n")
    save_lineage(old, tmp_path / "old")
    state = json.loads((tmp_path / "old" / "state.json").read_text())
    assert state["segments"][0]["run_id"] == f"path:{old.resolve()}" and state["step"] == 3
    assert not state["tokens"]["exact"] and state["tokens"]["computed"] > 0
    config = continue_config(tmp_path / "old", {"out": str(tmp_path / "next")})
    assert config.steps == 6 and config.resume_from == str(tmp_path / "old")


@pytest.mark.slow
def test_train_sh_saves_a_lineage_and_continues_it_with_its_settings(tmp_path):
    root = Path(__file__).resolve().parents[2]
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

    def run(**knobs):
        env = os.environ | {"PATH": path, "THREADS": "1", "LINEAGE": "smoke", "LINEAGE_DIR": str(tmp_path)} | knobs
        return subprocess.run(["bash", "scripts/train.sh"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=600)

    done = run(SMOKE="1", OUT=str(tmp_path / "one"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    done = run(RESUME_FROM=str(tmp_path / "smoke"), OUT=str(tmp_path / "two"), STEPS="6", WARMUP="1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert (config["ctx_len"], config["batch_size"], config["steps"], config["warmup_steps"]) == (256, 1, 6, 1)
    assert config["data"] == ["folder:tests/fixtures"] and config["tokenizer"] == str(tmp_path / "smoke" /
                                                                                     "model.tokenizer.json")
    state = json.loads((tmp_path / "smoke" / "state.json").read_text())
    assert [(s["from_step"], s["to_step"]) for s in state["segments"]] == [(0, 4), (4, 6)]
    assert [r["step"] for r in read_loss_csv(tmp_path / "smoke" / "loss.csv")] == [1, 2, 3, 4, 5, 6]
    done = run(RESUME_FROM=str(tmp_path / "nothing"), OUT=str(tmp_path / "three"))
    assert done.returncode == 2 and "not a lineage" in done.stderr


def test_tokens_seen_beyond_the_last_history_row_are_estimated_not_claimed_exact():
    from midi_rwkv.train.lineage import tokens_seen

    rows = [{"step": s, "tokens": 100.0 * s, "real_tokens": 90.0 * s} for s in range(1, 501)]
    assert tokens_seen(rows, 500, {}) == {"computed": 50000, "real": 45000, "exact": True}
    later = tokens_seen(rows, 750, {})  # a checkpoint 250 steps after the history was last written
    assert later == {"computed": 75000, "real": 67500, "exact": False}
