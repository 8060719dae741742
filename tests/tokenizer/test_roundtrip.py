"""Tokenize, then decode: the notes equal the quantised score's, track by track."""

import pytest

from midi_rwkv.tokenizer.remi import decoded_track, encode_tracks


def _beats(track, tpq):
    return sorted((n.time / tpq, n.duration / tpq, n.pitch, n.velocity) for n in track.notes)


@pytest.mark.parametrize("name", ["waltz", "jig", "band", "breve", "chorale"])
def test_encode_decode_equals_quantised_score(tok, request, name, chorale_path):
    source = chorale_path if name == "chorale" else request.getfixturevalue(name)
    piece = tok.prepare(source)
    tracks = encode_tracks(piece, tok.codec.vocab)
    assert all(len(t.bars) == len(piece.token_bars) for t in tracks)
    tpq = piece.score.ticks_per_quarter
    for track, original in zip(tracks, piece.score.tracks):
        decoded, decoded_tpq = decoded_track(tok.codec.vocab, track.program, track.bars)
        assert _beats(decoded, decoded_tpq) == _beats(original, tpq)
        assert decoded.is_drum == original.is_drum


def test_bar_headers_carry_the_real_metre(tok, jig, breve):
    names = tok.codec.vocab.tokens
    jig_bars = encode_tracks(tok.prepare(jig), tok.codec.vocab)[0].bars
    assert {names[h[1]] for h, _ in jig_bars} == {"TimeSig_6/8"}
    breve_piece = tok.prepare(breve)
    assert breve_piece.num_bars == 6 and len(breve_piece.token_bars) == 4 * 2 + 2
    breve_bars = encode_tracks(breve_piece, tok.codec.vocab)[0].bars
    assert [names[h[1]] for h, _ in breve_bars] == ["TimeSig_4/4"] * 8 + ["TimeSig_6/4"] * 2


def test_tempo_changes_survive(tok, waltz):
    piece = tok.prepare(waltz)
    first, second = [t.qpm for t in piece.score.tempos]  # quantised to the 48 tempo bins
    assert abs(first - 90) < 2 and abs(second - 140) < 2
    names = tok.codec.vocab.tokens
    bars = encode_tracks(piece, tok.codec.vocab)[0].bars
    assert any(names[i].startswith("Tempo_") for i in bars[4][1])
