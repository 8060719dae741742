"""What tune-style and tune report: held-out pieces (or bars), the loss on them before and after, early stopping that
keeps the best adapter, and one line on whether it generalised."""

import json

import pytest
import torch

from midi_rwkv.cli import main
from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.model import RWKV7, init_weights, save_checkpoint, tiny_config
from midi_rwkv.peft.adapters import StateAdapter
from midi_rwkv.peft.holdout import BarsCorpus, held_out_pieces, hold_out_bars, read_split_file, verdict
from midi_rwkv.peft.tune import evaluate, example_loader, held_out_loader, tune
from midi_rwkv.tokenizer.metre import real_bars
from tests.conftest import TPQ, make_score


def _model(seed=0):
    torch.manual_seed(seed)
    m = init_weights(RWKV7(tiny_config(663)), seed=seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _piece(path, key=0, notes=160):
    cells = [(i * TPQ // 2, TPQ // 2, 60 + key + (0, 2, 4, 7, 9, 7, 4, 2)[i % 8], 90) for i in range(notes)]
    make_score([(0, 4, 4)], [(0, False, cells)]).dump_midi(path)


def _folder(path, count, notes=160):
    path.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        _piece(path / f"piece{k}.mid", k, notes)
    return path


def _base(tmp_path, tok, name="base"):
    model_path = save_checkpoint(_model(), tmp_path / name / "model.pth")
    tok.save(tmp_path / name / "tokenizer.json")
    return model_path


@pytest.mark.parametrize("count, held", [(0, 0), (1, 0), (2, 1), (5, 1), (8, 2), (10, 2), (20, 4)])
def test_one_piece_in_five_is_held_out_at_least_one_never_all(count, held):
    assert len(held_out_pieces([f"p{i}.mid" for i in range(count)], 0.2, seed=0)) == held


def test_the_held_out_choice_depends_on_the_pieces_not_their_order():
    ids = [f"song{i}.mid" for i in range(10)]
    chosen = {ids[i] for i in held_out_pieces(ids, 0.2, seed=0)}
    assert {ids[::-1][i] for i in held_out_pieces(ids[::-1], 0.2, seed=0)} == chosen
    assert held_out_pieces(ids, 0.2, seed=0) == held_out_pieces(ids, 0.2, seed=0)
    assert any({ids[i] for i in held_out_pieces(ids, 0.2, seed=s)} != chosen for s in range(1, 6))


def test_verdict_needs_a_fall_larger_than_the_margin():
    assert verdict(2.50, 2.40, 0.02, "2 held-out pieces")[0]
    ok, line = verdict(2.50, 2.49, 0.02, "2 held-out pieces")
    assert not ok and line.startswith("did not generalise") and "2.500 -> 2.490" in line and "0.02" in line
    assert not verdict(2.50, 2.60, 0.02, "x")[0]


def test_a_single_piece_is_cut_at_a_bar_line_and_its_last_bars_held_out(tmp_path):
    _folder(tmp_path / "one", 1, notes=160)  # 20 bars of 4/4 eighths
    corpus = FolderCorpus(tmp_path / "one")
    score = corpus.load(0)
    bars = [(b.start, b.end) for b in real_bars(score, score.end())][:20]
    parts = hold_out_bars(corpus, 0, bars, 0.2)
    assert isinstance(parts, BarsCorpus) and parts.ids == ["piece0.mid (bars 1-16)", "piece0.mid (bars 17-20)"]
    first, last = parts.load(0), parts.load(1)
    assert first.note_num() + last.note_num() == score.note_num() == 160
    assert last.start() == 0 and last.note_num() == 32 and first.end() <= 16 * 4 * TPQ
    assert hold_out_bars(corpus, 0, bars[:9], 0.2) is None  # too short to spare bars


def test_tune_stops_when_the_held_out_loss_stops_falling_and_keeps_the_best(tmp_path, tok, monkeypatch):
    import midi_rwkv.peft.tune as tune_module

    corpus = FolderCorpus(_folder(tmp_path / "p", 4))
    model = _model()
    adapter = StateAdapter(model)
    scripted = iter([5.0, 4.0, 3.5, 3.6, 3.7, 3.0])  # held-out losses at steps 0, 1, 2, 3, 4 (5 is never reached)
    states = {}

    def fake_evaluate(model, adapter, loader):
        states[len(states)] = adapter.wkv.detach().clone()
        return next(scripted)

    monkeypatch.setattr(tune_module, "evaluate", fake_evaluate)
    train = example_loader(corpus, [0, 1, 2], tok, 128, 2, 30, seed=0, layout="file-order")
    history = tune(model, adapter, train, lr=5e-2, lr_final=5e-3, progress=False, held_out=[], eval_every=1,
                   patience=2)
    assert history["stopped_early"] and history["steps_run"] == 4 < history["steps"] == 30
    assert history["held_out_losses"] == [(0, 5.0), (1, 4.0), (2, 3.5), (3, 3.6), (4, 3.7)]
    assert history["best_step"] == 2 and history["best_held_out_loss"] == 3.5
    assert torch.equal(adapter.wkv, states[2]) and not torch.equal(adapter.wkv, states[4])  # step 2's state is back
    assert torch.count_nonzero(states[2]) > 0


def test_tune_keeps_the_state_of_the_best_step(tmp_path, tok):
    corpus = FolderCorpus(_folder(tmp_path / "p", 4))
    model = _model()
    adapter = StateAdapter(model)
    held = held_out_loader(corpus, [3], tok, 128, 2, 1, seed=9, layout="file-order")
    train = example_loader(corpus, [0, 1, 2], tok, 128, 2, 6, seed=0, layout="file-order")
    history = tune(model, adapter, train, lr=5e-2, lr_final=5e-3, progress=False, held_out=held, eval_every=2)
    losses = dict(history["held_out_losses"])
    assert sorted(losses) == [0, 2, 4, 6] and not history["stopped_early"]
    assert history["best_step"] == min(losses, key=losses.get)
    assert evaluate(model, adapter, held) == pytest.approx(losses[history["best_step"]], abs=1e-4)


def test_held_out_loader_measures_as_many_examples_with_few_pieces(tmp_path, tok):
    corpus = FolderCorpus(_folder(tmp_path / "p", 4))
    one = held_out_loader(corpus, [0], tok, 128, 4, 2, seed=0, layout="file-order")
    four = held_out_loader(corpus, [0, 1, 2, 3], tok, 128, 4, 2, seed=0, layout="file-order")
    assert sum(len(b["input_ids"]) for b in one) == sum(len(b["input_ids"]) for b in four) == 8


def _tune_style(tmp_path, model_path, folder, capsys, *extra):
    style = tmp_path / "style.safetensors"
    argv = ["tune-style", str(folder), "-o", str(style), "--model", str(model_path), "--steps", "4", "--ctx-len", "128",
            "--batch-size", "2", "--eval-batches", "1", "--eval-every", "2", *extra]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    return style, summary, out


def test_tune_style_holds_out_a_piece_and_says_whether_the_style_generalised(tmp_path, tok, capsys):
    model_path = _base(tmp_path, tok)
    style, summary, out = _tune_style(tmp_path, model_path, _folder(tmp_path / "mine", 6), capsys)
    assert summary["pieces"] == 5 and len(summary["held_out"]) == 1
    assert {"held_out_loss_before", "held_out_loss_after", "generalised", "best_step", "stopped_early"} <= set(summary)
    assert summary["held_out_loss_after"] <= summary["held_out_loss_before"]  # the best of steps 0, 2, 4
    verdicts = [line for line in out.splitlines() if line.startswith("style ")]
    assert len(verdicts) == 1 and verdicts[0].startswith(("style generalised:", "style did not generalise:"))
    assert "held-out loss" in verdicts[0] and "on 1 held-out piece," in verdicts[0]
    meta = json.loads(style.with_suffix(".json").read_text())
    assert meta["held_out"] == summary["held_out"] and summary["held_out"][0] not in meta["pieces"]


def test_tune_style_on_one_piece_holds_out_its_last_bars(tmp_path, tok, capsys):
    model_path = _base(tmp_path, tok)
    _, summary, out = _tune_style(tmp_path, model_path, _folder(tmp_path / "one", 1, notes=160), capsys)
    assert summary["held_out"] == ["piece0.mid (bars 17-20)"] and "held_out_loss_before" in summary
    assert "style generalised:" in out or "style did not generalise:" in out


def test_tune_style_on_one_short_piece_says_why_it_cannot_tell(tmp_path, tok, capsys):
    model_path = _base(tmp_path, tok)
    _, summary, out = _tune_style(tmp_path, model_path, _folder(tmp_path / "short", 1, notes=48), capsys)  # 6 bars
    assert summary["held_out"] == [] and "held_out_loss_before" not in summary
    assert "style cannot tell whether it generalises: one piece of 6 bars" in out


def test_split_file_is_checked(tmp_path):
    corpus = FolderCorpus(_folder(tmp_path / "p", 4))
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["piece0.mid", "piece1.mid"], "validation": ["piece2.mid"],
                                "test": ["piece3.mid"]}))
    assert read_split_file(path, corpus) == {"train": [0, 1], "validation": [2], "test": [3]}
    for bad, message in [({"train": ["x.mid"], "test": ["piece3.mid"]}, "not in"),
                         ({"train": ["piece0.mid"], "test": ["piece0.mid"]}, "both the train and the test"),
                         ({"train": ["piece0.mid"], "test": []}, "test split names no piece")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(MidiRwkvError, match=message):
            read_split_file(path, corpus)


def test_tune_on_a_split_file_stops_on_validation_and_reports_the_test_loss(tmp_path, tok, capsys):
    model_path = _base(tmp_path, tok)
    folder = _folder(tmp_path / "corpus", 5)
    split = tmp_path / "split.json"
    named = {"train": ["piece0.mid", "piece1.mid"], "validation": ["piece2.mid"], "test": ["piece3.mid", "piece4.mid"]}
    split.write_text(json.dumps(named))
    out = tmp_path / "run"
    argv = ["tune", "--data", f"folder:{folder}", "--split-file", str(split), "--out", str(out), "--model",
            str(model_path), "--steps", "3", "--ctx-len", "128", "--batch-size", "2", "--eval-batches", "1",
            "--eval-every", "1", "--method", "lora", "--rank", "2", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "split as " in printed
    assert "lora: generalised:" in printed or "lora: did not generalise:" in printed
    saved = json.loads((out / "split.json").read_text())
    assert {k: saved[k] for k in named} == named
    report = json.loads((out / "report.json").read_text())
    assert report["pieces"] == {"train": 2, "validation": 1, "test": 2}
    assert [s for s, _ in report["validation_losses"]] == [0, 1, 2, 3] and report["peak_rss_mib"] > 10
    assert isinstance(report["generalised"], bool) and report["trainable_parameters"] > 0
    meta = json.loads((out / "lora_r2.json").read_text())
    assert meta["base_model"]["file"] == "model.pth" and len(meta["base_model"]["sha256"]) == 12
