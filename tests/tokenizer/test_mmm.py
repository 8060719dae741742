import json

import pytest

from midi_rwkv.errors import TokenizerFileError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.mmm import PAPER_BASE_VOCAB_SIZE
from tests.conftest import FIXTURES

# (id, token) anchors from docs/original-release.md#vocabulary: the base vocabulary of the original release.
SPEC_IDS = [
    (0, "PAD_None"), (3, "Infill_Bar"), (5, "FillBar_Start"), (8, "Track_End"), (9, "Bar_None"),
    (10, "Pitch_21"), (97, "Pitch_108"), (98, "Velocity_5"), (121, "Velocity_127"),
    (122, "Duration_0.1.12"), (145, "Duration_8.0.1"), (146, "Position_0"), (289, "Position_143"),
    (290, "PitchDrum_27"), (350, "PitchDrum_87"), (351, "Tempo_50.0"), (398, "Tempo_200.0"),
    (399, "Program_0"), (526, "Program_-1"), (527, "TimeSig_3/8"), (535, "TimeSig_4/4"),
    (536, "ACTrackOnsetPolyphonyMin_1"), (548, "ACBarOnsetPolyphonyMin_1"), (554, "ACBarOnsetPolyphonyMax_1"),
    (560, "ACBarPitchClass_0"), (608, "ACTrackNoteDensityMin_18+"), (610, "ACBarNoteDensity_0"),
    (628, "ACBarNoteDensity_18+"), (629, "ACBarNoteDurationWhole_0"), (630, "ACBarNoteDurationWhole_1"),
    (641, "ACTrackNoteDurationWhole_0"), (653, "ACTrackRepetition_0.00"), (662, "ACTrackRepetition_1.00"),
]


def test_paper_base_vocabulary_matches_the_original_id_for_id(tok):
    assert len(tok.miditok.vocab) == PAPER_BASE_VOCAB_SIZE == tok.vocab_size
    for i, token in SPEC_IDS:
        assert tok.codec.vocab.tokens[i] == token


def test_save_load_round_trip_is_atomic(tok, tmp_path):
    path = tok.save(tmp_path / "sub" / "tokenizer.json", metadata={"note": "test"})
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temporary file left
    loaded = InfillTokenizer.load(path)
    assert loaded.miditok.vocab == tok.miditok.vocab
    assert json.loads(path.read_text())["midi_rwkv"] == {"note": "test"}


def test_original_release_tokenizer_loads_with_the_same_base_ids(tok):
    # Saved by miditok 3.0.5.post1 with the paper's config and a Metaspace BPE (make_original_tokenizer.py).
    original = InfillTokenizer.load(FIXTURES / "original_release_tokenizer.json")
    assert original.miditok.vocab == tok.miditok.vocab  # 3.0.x's [21, 109) read as 3.1's [21, 108]
    assert tuple(original.miditok.config.pitch_range) == (21, 108)
    assert original.vocab_size == 800
    assert original.codec.pieces[663] == ()  # the bare Metaspace "▁" decodes to nothing
    assert all(len(p) >= 1 for p in original.codec.pieces[664:])


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"tokenization": "REMI", "config": {}}), json.dumps([1, 2])],
    ids=["not-json", "not-mmm", "not-an-object"],
)
def test_bad_tokenizer_files_raise_one_error_type(tmp_path, content):
    path = tmp_path / "tok.json"
    path.write_text(content)
    with pytest.raises(TokenizerFileError):
        InfillTokenizer.load(path)


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(TokenizerFileError, match="not found"):
        InfillTokenizer.load(tmp_path / "nope.json")
