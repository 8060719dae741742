"""midi-rwkv pool-evaluations: several seeds' evaluations read as one, with the paired tests over every prompt."""

import csv
import json

import pytest

from midi_rwkv.cli import main
from midi_rwkv.metrics.report import CONTROLS, MUSIC

SETTINGS = {"data": "pop909:x", "prompts": 6, "bars": 4, "context": 16, "track": 0, "split": "test"}


def evaluation(folder, seed: int, model_cp: float, bars: int = 4) -> None:
    """An evaluation folder as `midi-rwkv evaluate` leaves it: 6 prompts, a model 'm', and the reference rows."""
    (folder / "generations" / "m").mkdir(parents=True)
    settings = dict(SETTINGS, seed=seed, bars=bars)
    (folder / "prompts.json").write_text(json.dumps({"settings": settings, "prompts": []}))
    with (folder / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "system", "metric", "value"])
        for p in range(6):
            for system, cp in (("m", model_cp + 0.01 * p), ("original", 1.0), ("copy", 0.3 + 0.01 * p)):
                for metric in (*MUSIC, *CONTROLS):
                    writer.writerow([f"p{p}", system, metric, cp if metric == "content_preservation" else 0.5])
                if system == "m":
                    writer.writerow([f"p{p}", system, "seconds", 0.1])


def test_pooling_three_seeds_pairs_every_prompt(tmp_path, capsys):
    for seed in range(3):
        evaluation(tmp_path / f"s{seed}", seed, model_cp=0.2)
    folders = [str(tmp_path / f"s{seed}") for seed in range(3)]
    assert main(["pool-evaluations", *folders, "--out", str(tmp_path / "pool")]) == 0
    text = (tmp_path / "pool" / "summary.md").read_text()
    assert "Prompts: 18 from `pop909:x` (test split, seed 0, 1, 2)" in text
    assert "| copy | m | CP | 18 |" in text  # 18 pairs: a prompt of each seed stays its own prompt
    assert (tmp_path / "pool" / "metrics.png").is_file()
    capsys.readouterr()


def test_pooling_refuses_evaluations_that_asked_other_things(tmp_path, capsys):
    evaluation(tmp_path / "a", 0, model_cp=0.2)
    evaluation(tmp_path / "b", 1, model_cp=0.2, bars=2)
    assert main(["pool-evaluations", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "p")]) != 0
    assert "asks other things" in capsys.readouterr().err
    assert not (tmp_path / "p" / "summary.md").exists()


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_pooling_names_a_folder_that_is_no_evaluation(tmp_path, capsys, what):
    if what == "empty":
        (tmp_path / "e").mkdir()
    assert main(["pool-evaluations", str(tmp_path / "e"), "--out", str(tmp_path / "p")]) != 0
    assert "not an evaluation folder" in capsys.readouterr().err
