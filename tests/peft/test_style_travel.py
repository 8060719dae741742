"""Styles that travel: a style file records the base model it fits, and another base refuses it with one line that
names both (``midi-rwkv infill --state``)."""

import json

import pytest
import torch

from midi_rwkv.cli import main
from midi_rwkv.io import file_sha256
from midi_rwkv.model import RWKV7, init_weights, load_checkpoint, save_checkpoint, tiny_config
from midi_rwkv.peft.adapters import LoRA, fingerprint, save_adapter
from tests.conftest import FIXTURES, TPQ, make_score


def _base(folder, tok, seed):
    torch.manual_seed(seed)
    model = init_weights(RWKV7(tiny_config(663)), seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_checkpoint(model, folder / "model.pth")
    tok.save(folder / "tokenizer.json")
    return path


@pytest.fixture
def two_bases(tmp_path, tok):
    return _base(tmp_path / "a", tok, 0), _base(tmp_path / "b", tok, 1)


def _infill(model, capsys, *adapter):
    argv = ["infill", str(FIXTURES / "bach_bwv66.6.mid"), "--track", "0", "--bars", "2:3", "-n", "1", "--model",
            str(model), "--max-tokens", "50", *adapter]
    code = main(argv)
    return code, capsys.readouterr().err


def test_a_style_from_tune_style_records_its_base_and_another_base_refuses_it(tmp_path, two_bases, capsys):
    base_a, base_b = two_bases
    mine = tmp_path / "mine"
    mine.mkdir()
    for k in range(3):
        notes = [(i * TPQ // 2, TPQ // 2, 62 + k + (0, 3, 5, 7)[i % 4], 90) for i in range(96)]
        make_score([(0, 4, 4)], [(0, False, notes)]).dump_midi(mine / f"tune{k}.mid")
    style = tmp_path / "style.safetensors"
    assert main(["tune-style", str(mine), "-o", str(style), "--model", str(base_a), "--steps", "1", "--ctx-len", "128",
                 "--eval-batches", "1"]) == 0
    capsys.readouterr()
    recorded = json.loads(style.with_suffix(".json").read_text())["base_model"]
    id_a = file_sha256(base_a)[:12]
    assert recorded["file"] == "model.pth" and recorded["sha256"] == id_a
    assert recorded["fingerprint"] == fingerprint(load_checkpoint(base_a).float())

    code, err = _infill(base_b, capsys, "--state", str(style), "-o", str(tmp_path / "out"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("midi-rwkv: error: ") and "tuned on another base model" in lines[0]
    fingerprint_b = fingerprint(load_checkpoint(base_b).float())
    assert id_a in lines[0] and recorded["fingerprint"] in lines[0] and fingerprint_b in lines[0]  # names both
    assert not (tmp_path / "out").exists()  # refused before anything was written

    code, err = _infill(base_a, capsys, "--state", str(style), "-o", str(tmp_path / "ok"))
    assert code == 0 and not err.count("error")  # its own base takes it


def test_a_lora_is_refused_by_another_base_too(tmp_path, two_bases, capsys):
    base_a, base_b = two_bases
    model = load_checkpoint(base_a).float()
    lora = save_adapter(LoRA(model, rank=2), model, tmp_path / "lora.safetensors", base_path=base_a)
    code, err = _infill(base_b, capsys, "--lora", str(lora))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert file_sha256(base_a)[:12] in err and fingerprint(load_checkpoint(base_b).float()) in err


def test_an_adapter_without_a_base_record_is_refused_with_a_reason(tmp_path, two_bases, capsys):
    base_a, _ = two_bases
    model = load_checkpoint(base_a).float()
    lora = save_adapter(LoRA(model, rank=2), model, tmp_path / "lora.safetensors")
    sidecar = lora.with_suffix(".json")
    sidecar.write_text(json.dumps({k: v for k, v in json.loads(sidecar.read_text()).items() if k != "base_model"}))
    code, err = _infill(base_a, capsys, "--lora", str(lora))
    assert code == 2 and "records no base model" in err
