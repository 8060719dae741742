import random

import pytest

from midi_rwkv.tokenizer import load_score
from midi_rwkv.tokenizer.examples import ExampleBuilder, ExampleConfig, augment
from tests.conftest import TPQ, make_score


@pytest.mark.parametrize("max_len", [256, 2048])
def test_examples_fit_and_end_with_their_section(tok, chorale_path, waltz, band, max_len):
    builder = ExampleBuilder(tok, ExampleConfig(max_len=max_len))
    rng = random.Random(1)
    vocab = tok.codec.vocab
    kinds = set()
    for score in (load_score(chorale_path), waltz, band):
        for _ in range(15):
            seq = builder(score, rng)
            assert seq is not None and len(seq.ids) <= max_len
            kinds.add(seq.kind)
            if seq.kind == "bar":
                assert seq.ids[-1] == vocab["FillBar_End"] and seq.ids.count(vocab["FillBar_Start"]) == 1
            else:
                assert seq.ids.count(vocab["Infill_Track"]) == 1 and seq.ids[-1] == vocab["Track_End"]
    assert kinds == {"bar", "track"}


def test_examples_are_reproducible_with_a_seed(tok, chorale_path):
    builder = ExampleBuilder(tok)
    score = load_score(chorale_path)
    first = [builder(score, random.Random(7)).ids for _ in range(3)]
    again = [builder(score, random.Random(7)).ids for _ in range(3)]
    assert first == again


def test_augmentation_shifts_melodic_pitches_only_and_clips_velocity():
    score = make_score([(0, 4, 4)], [(0, False, [(0, TPQ, 60, 126)]), (0, True, [(0, TPQ, 36, 2)])])
    out = augment(score, pitch=3, velocity=2)
    assert (out.tracks[0].notes[0].pitch, out.tracks[0].notes[0].velocity) == (63, 127)
    assert (out.tracks[1].notes[0].pitch, out.tracks[1].notes[0].velocity) == (36, 4)
    assert score.tracks[0].notes[0].pitch == 60  # the input is untouched


def test_config_is_validated():
    with pytest.raises(ValueError):
        ExampleConfig(span_ratio=(0.5, 0.2))
    with pytest.raises(ValueError):
        ExampleConfig(bar_infill_ratio=1.5)
