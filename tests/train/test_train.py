import csv
import json
import math
from collections import Counter

import pytest
import torch

from midi_rwkv.data.dataset import IGNORE, make_labels, unlearned_ids
from midi_rwkv.model import RWKV7, init_weights, load_checkpoint, tiny_config
from midi_rwkv.model.kernels import use_backend
from midi_rwkv.train.module import L2Wrap, OptimConfig, RWKVLightning, lm_loss, lr_multiplier, param_groups
from midi_rwkv.train.pretrain import train
from midi_rwkv.train.train_config import TrainConfig
from tests.conftest import FIXTURES


def test_schedule_warms_up_then_decays_to_lr_final_over_the_run():
    config = OptimConfig(lr_init=1e-3, lr_final=1e-4, warmup_steps=10, total_steps=110)
    assert lr_multiplier(0, config) == pytest.approx(0.01)
    assert lr_multiplier(10, config) == pytest.approx(1.0)
    assert lr_multiplier(60, config) == pytest.approx(0.55)
    assert lr_multiplier(110, config) == pytest.approx(0.1)


def test_param_groups_follow_the_paper():
    model = RWKV7(tiny_config())
    decay, double, plain = param_groups(model, OptimConfig())
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[-1] for p in double["params"]} == {"w0"} and double["lr"] == 2 * plain["lr"]
    assert all(p.dim() == 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert "emb.weight" in {names[id(p)] for p in decay["params"]}
    assert not any(names[id(p)].endswith(("w1", "ln_x.weight")) for p in decay["params"])  # LoRA-like mats: no decay
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in (decay, double, plain)) == len(trainable)
    assert set(names.values()) - set(trainable) == {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"}


def test_l2wrap_adds_gradient_only_at_the_argmax():
    logits = torch.tensor([[[1.0, 3.0, 2.0]]], requires_grad=True)
    L2Wrap.apply(torch.tensor(0.0, requires_grad=True), logits).backward()
    assert logits.grad[0, 0].tolist() == pytest.approx([0.0, 3e-4, 0.0])


def test_tiny_model_overfits_fixture_sequences(tok, chorale_path):
    """With the CPU kernel, loss on a handful of sequences falls far below their unigram entropy."""
    piece = tok.prepare(chorale_path)
    seqs = [tok.bar_infill(piece, t, (2, 4), context_bars=1).ids for t in range(4)]
    unlearned = unlearned_ids(tok)
    pairs = [make_labels(s, unlearned) for s in seqs]
    longest = max(len(i) for i, _ in pairs)
    inputs = torch.tensor([i + [0] * (longest - len(i)) for i, _ in pairs])
    labels = torch.tensor([lab + [IGNORE] * (longest - len(lab)) for _, lab in pairs])
    counts = Counter(t for _, lab in pairs for t in lab if t != IGNORE)
    total = sum(counts.values())
    unigram = -sum(c / total * math.log(c / total) for c in counts.values())
    torch.manual_seed(0)
    model = init_weights(RWKV7(tiny_config(tok.vocab_size)), seed=0)
    optimizer = torch.optim.AdamW(
        param_groups(model, OptimConfig(lr_init=3e-3, lr_final=3e-3)), betas=(0.9, 0.99), eps=1e-8
    )
    with use_backend("cpu"):
        for _ in range(120):
            logits, _ = model(inputs)
            loss = lm_loss(logits, labels)
            optimizer.zero_grad()
            L2Wrap.apply(loss, logits).backward()
            optimizer.step()
    assert loss.item() < 0.25 * unigram, (loss.item(), unigram)


def _run_config(out, **overrides):
    return TrainConfig(
        **(
            {
                "data": [f"folder:{FIXTURES}"],
                "out": str(out),
                "preset": "tiny",
                "ctx_len": 128,
                "batch_size": 1,
                "steps": 6,
                "val_every": 3,
                "val_batches": 1,
                "ckpt_every": 2,
                "workers": 0,
                "warmup_steps": 2,
                "lr_init": 3e-3,
                "lr_final": 1e-4,
            }
            | overrides
        )
    )


def _losses(out):
    with (out / "loss.csv").open() as f:
        return [(int(r["step"]), float(r["train_loss"]), float(r["lr"])) for r in csv.DictReader(f)]


def test_resume_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    whole = train(_run_config(tmp_path / "whole"), progress=False)
    train(_run_config(tmp_path / "parts"), progress=False, stop_after=3)
    assert not (tmp_path / "parts" / "model.pth").exists()  # nothing exported from an unfinished run
    trained_steps = []  # the resumed call must train steps 4-6 only, not restart and replay 1-3
    original_step = RWKVLightning.training_step

    def recording_step(self, batch, batch_idx):
        trained_steps.append(self.trainer.global_step)
        return original_step(self, batch, batch_idx)

    monkeypatch.setattr(RWKVLightning, "training_step", recording_step)
    parts = train(_run_config(tmp_path / "parts"), progress=False, resume=True)
    assert trained_steps == [3, 4, 5]  # global_step counts finished steps: the 4th step starts at 3
    assert _losses(tmp_path / "whole") == _losses(tmp_path / "parts")
    assert [s for s, _, _ in _losses(tmp_path / "whole")] == [1, 2, 3, 4, 5, 6]
    a, b = load_checkpoint(whole), load_checkpoint(parts)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    for name in ("config.json", "manifest.json", "loss.png", "tokenizer.json", "model.json"):
        assert (tmp_path / "whole" / name).is_file(), name
    assert json.loads((tmp_path / "whole" / "model.json").read_text())["layout"] == "target-last"  # the default
    with pytest.raises(Exception, match="already holds a run"):
        train(_run_config(tmp_path / "whole"), progress=False)
    # any checkpoint of the run exports from the command line, with the run's tokenizer beside it
    from midi_rwkv.cli import main

    assert main(["export", str(tmp_path / "parts"), "--step", "4"]) == 0
    exported = tmp_path / "parts" / "model-step-4.pth"
    assert exported.is_file() and (tmp_path / "parts" / "model-step-4.tokenizer.json").is_file()
    assert load_checkpoint(exported).config.vocab_size == load_checkpoint(parts).config.vocab_size
    assert json.loads(exported.with_suffix(".json").read_text())["layout"] == "target-last"  # the run's
