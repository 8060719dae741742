"""scripts/personalisation.sh and its Python stages (bench/personalisation.py): the split, the report, the rules it
states, and a whole rehearsal on a tiny model and a generated corpus."""

import csv
import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

from midi_rwkv.data.splits import SPLIT_RATIOS, split_of
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import file_sha256
from tests.conftest import TPQ, make_score
from tests.test_scripts import script_env

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "personalisation.sh"
spec = importlib.util.spec_from_file_location("personalisation", ROOT / "bench" / "personalisation.py")
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def test_the_script_is_a_recipe_with_its_knobs_on_top_and_never_deletes():
    text = SCRIPT.read_text()
    knobs = text.split("# ---- knobs", 1)[1].split("banner()", 1)[0]
    for name in ("SIZES", "METHODS", "STEPS", "PROMPTS", "OUT", "MODEL", "DOC", "DATA"):
        assert re.search(rf"^{name}=\$\{{{name}:-.+#", knobs, re.M), name  # a default and a comment
    assert "set -euo pipefail" in text and text.count('banner "') == 4
    assert not re.search(r"(^|[\s;|&])(rm|rmdir|unlink)\s", text)
    assert 'SIZES=${SIZES:-"8 32 128"}' in text and 'METHODS=${METHODS:-"state lora4 lora32"}' in text


def test_the_shipped_document_names_the_shipped_model():
    doc = ROOT / "docs" / "personalisation.md"
    if not doc.is_file():
        pytest.skip("docs/personalisation.md is not written yet (scripts/personalisation.sh)")
    model_id = file_sha256(ROOT / "midi_rwkv.pth")[:12]
    assert doc.read_text().startswith(f"# Personalisation on the base model `{model_id}`"), (
        "docs/personalisation.md is about another base model: run scripts/personalisation.sh again"
    )


# ---- the report, from made-up results ------------------------------------------------------------------------------
def _fake_study(tmp_path, gains, cp, sizes=(8, 32), prompts=12):
    """A study folder: split files, each run's report.json, an evaluation (results.csv, prompts.json). ``gains``:
    method -> fall of the held-out loss; ``cp``: system -> CP added to the base's on every prompt."""
    out = tmp_path / "study"
    train = [f"{i:03d}" for i in range(max(sizes))]
    for n in sizes:
        (out / "splits").mkdir(parents=True, exist_ok=True)
        (out / "splits" / f"split-{n}.json").write_text(json.dumps(
            {"train": train[:n], "validation": ["900"], "test": ["901", "902"], "note": "made up"}))
        for method, gain in gains.items():
            run = out / "runs" / f"{method}-{n}"
            run.mkdir(parents=True)
            config = {"min_gain": 0.02, "eval_every": 25, "patience": 3, "steps": 200, "batch_size": 4,
                      "ctx_len": 1024}
            (run / "report.json").write_text(json.dumps({
                "trainable_parameters": 1000, "pieces": {"train": n, "validation": 1, "test": 2}, "steps_run": 100,
                "best_step": 75, "seconds": 60.0, "peak_rss_mib": 600.0, "test_loss_before": 3.0,
                "test_loss_after": 3.0 - gain, "generalised": gain > 0.02, "lr": 0.05, "config": config}))
    systems = ["base"] + [f"{m}-{n}" for n in sizes for m in gains]
    (out / "eval").mkdir()
    with (out / "eval" / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "system", "metric", "value"])
        writer.writeheader()
        for p in range(prompts):
            for s in systems:
                for metric in study.TESTED:
                    value = 0.3 + 0.01 * p + (cp.get(s.split("-")[0], 0) if metric == "content_preservation" else 0)
                    writer.writerow({"prompt": f"p{p}", "system": s, "metric": metric, "value": value})
    (out / "eval" / "prompts.json").write_text(json.dumps({"prompts": [{"piece": "901"}, {"piece": "902"}]}))
    model = tmp_path / "model.pth"
    model.write_bytes(b"weights")
    return out, model


@pytest.mark.parametrize("gains, cp, word", [
    ({"state": 0.10, "lora4": 0.05}, {}, "holds"),
    ({"state": 0.01, "lora4": 0.00}, {}, "does not hold"),  # state tuning does not clear the margin
    ({"state": 0.05, "lora4": 0.10}, {}, "does not hold"),  # LoRA lowers the loss more, and is not worse
    ({"state": 0.10, "lora4": 0.05}, {"lora4": 0.05}, "is mixed"),  # LoRA is significantly better on CP
], ids=["state-better", "state-below-margin", "lora-lower-loss", "lora-better-cp"])
def test_the_closing_note_follows_its_stated_rule(tmp_path, gains, cp, word):
    out, model = _fake_study(tmp_path, gains, cp)
    doc = study.report(out, str(model), [8, 32], list(gains), tmp_path / "doc" / "personalisation.md")
    text = doc.read_text()
    assert f"(state tuning personalises better than LoRA with few pieces) {word} here" in text
    assert text.startswith(f"# Personalisation on the base model `{file_sha256(model)[:12]}`")
    assert "| state tuning | 8 | 1,000 | 100 (75) | 60 s | 600 MiB |" in text
    assert "| state-32 |" in text and "Rule:" in text and (tmp_path / "doc" / "personalisation.png").is_file()


def test_the_report_refuses_prompts_from_songs_an_adapter_trained_on(tmp_path):
    out, model = _fake_study(tmp_path, {"state": 0.1, "lora4": 0.0}, {})
    (out / "eval" / "prompts.json").write_text(json.dumps({"prompts": [{"piece": "901"}, {"piece": "005"}]}))
    with pytest.raises(MidiRwkvError, match="trained on: 005"):
        study.report(out, str(model), [8, 32], ["state", "lora4"], tmp_path / "doc.md")


# ---- the whole script on a tiny model ------------------------------------------------------------------------------
def _corpus(folder: Path) -> None:
    """Pieces named so that the base's hash split gives 3 train, 1 validation and 2 test pieces."""
    want, names, i = {"train": 3, "validation": 1, "test": 2}, [], 0
    while any(want.values()):
        name, i = f"tune{i}.mid", i + 1
        split = split_of(f"folder/{name}", 0, SPLIT_RATIOS)
        if want[split]:
            want[split] -= 1
            names.append(name)
    folder.mkdir(parents=True)
    for k, name in enumerate(names):
        notes = [(j * TPQ // 2, TPQ // 2, 60 + k + (0, 2, 4, 7, 9, 7, 4, 2)[j % 8], 90) for j in range(160)]
        make_score([(0, 4, 4)], [(0, False, notes)]).dump_midi(folder / name)


@pytest.mark.slow
def test_a_rehearsal_runs_end_to_end_and_resumes(tmp_path, tiny_model, tok):
    from midi_rwkv.model import save_checkpoint

    model = save_checkpoint(tiny_model, tmp_path / "base" / "model.pth")
    tok.save(tmp_path / "base" / "tokenizer.json")
    _corpus(tmp_path / "corpus")
    out, doc = tmp_path / "study", tmp_path / "doc" / "personalisation.md"
    env = script_env(MODEL=str(model), DATA=f"folder:{tmp_path / 'corpus'}", SIZES="1 2", METHODS="state lora2",
                     STEPS="2", EVAL_EVERY="1", PROMPTS="1", CTX_LEN="128", BATCH="2", EVAL_BATCHES="1",
                     VALIDATION="1", OUT=str(out), DOC=str(doc))
    done = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for k in range(1, 5):
        assert f"==== {k}/4" in done.stdout
    assert "[4/4] lora2 on 2 songs -> " in done.stdout
    for run in ("state-1", "lora2-1", "state-2", "lora2-2"):
        report = json.loads((out / "runs" / run / "report.json").read_text())
        assert report["pieces"] == {"train": int(run[-1]), "validation": 1, "test": 2}
    text = doc.read_text()
    assert text.startswith(f"# Personalisation on the base model `{file_sha256(model)[:12]}`")
    assert "| lora2-2 |" in text and doc.with_suffix(".png").is_file()
    adapters = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    again = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count(": done (") == 4 and "is newer than every adapter" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == adapters  # nothing trained again
