import pytest
import torch

from midi_rwkv.model import RWKV7, CheckpointError, init_weights, load_checkpoint, save_checkpoint, tiny_config
from midi_rwkv.model.checkpoint import sidecar_path


@pytest.fixture
def model():
    return init_weights(RWKV7(tiny_config()), seed=0)


def test_save_load_round_trip(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pth"]  # no temporary files left
    loaded = load_checkpoint(path, vocab_size=663)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_bf16_export_and_rwkv_lm_state_dict_without_sidecar(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.pth", dtype=torch.bfloat16)
    sidecar_path(path).unlink()
    state = torch.load(path, weights_only=True)
    torch.save({f"_forward_module.{k}": v for k, v in state.items()}, path)  # as a DeepSpeed run saves it
    loaded = load_checkpoint(path)
    assert loaded.config.n_layer == 2 and loaded.config.head_size == 16 and loaded.config.vocab_size == 663
    assert next(loaded.parameters()).dtype == torch.bfloat16


def test_vocabulary_mismatch_is_refused(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="vocabulary of 663 tokens but the tokenizer has 16000"):
        load_checkpoint(path, vocab_size=16000)


def test_wrong_or_missing_files_are_refused(model, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")
    state = model.state_dict()
    del state["head.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "partial.pth")


def test_default_model_lookup_order(tmp_path, monkeypatch):
    from midi_rwkv.model.checkpoint import CheckpointError, default_model_candidates, resolve_model

    chosen = tmp_path / "mine.pth"
    chosen.write_bytes(b"x")
    monkeypatch.setenv("MIDI_RWKV_MODEL", str(chosen))
    assert resolve_model() == chosen  # 1. the environment variable
    monkeypatch.delenv("MIDI_RWKV_MODEL")
    checkout, installed = default_model_candidates()
    assert checkout.name == "midi_rwkv.pth" and installed.parts[-3:] == ("share", "midi-rwkv", "midi_rwkv.pth")
    monkeypatch.setattr("midi_rwkv.model.checkpoint.default_model_candidates", lambda: [tmp_path / "none.pth"])
    with pytest.raises(CheckpointError, match="no default model found"):
        resolve_model()
    with pytest.raises(CheckpointError, match="no model at"):
        resolve_model(tmp_path / "missing.pth")


def test_the_layout_a_model_was_trained_with_travels_in_its_sidecar(model, tmp_path):
    from midi_rwkv.model.checkpoint import model_layout

    assert model_layout(save_checkpoint(model, tmp_path / "a.pth", extra={"layout": "target-last"})) == "target-last"
    assert model_layout(save_checkpoint(model, tmp_path / "b.pth")) == "file-order"  # models from before layouts
    sidecar_path(tmp_path / "b.pth").unlink()
    assert model_layout(tmp_path / "b.pth") == "file-order"  # an RWKV-LM state dict
    save_checkpoint(model, tmp_path / "c.pth", extra={"layout": "sideways"})
    with pytest.raises(CheckpointError, match="unknown layout 'sideways'"):
        model_layout(tmp_path / "c.pth")
