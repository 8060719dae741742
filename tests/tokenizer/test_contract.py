"""The tokenizer contract (midi_rwkv.tokenizer.contract): one suite over both paths that implement it, the MIDI path
(MidiTok on a score) and the compiled path (arrays), on the same pieces: the corpus tests/data/test_compiled.py
compiles (four band pieces with drums, two metres and a tempo change, and the Bach chorale)."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest

from midi_rwkv.data.compile import representable
from midi_rwkv.data.compiled import NAMED_TOKENS, CompiledCorpus, CompiledExamples
from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.errors import BarRangeError, MidiRwkvError, TrackIndexError
from midi_rwkv.tokenizer.contract import BarRow, EncodedBars, PieceBars, TokenCodec, TrackFacts, Vocabulary
from midi_rwkv.tokenizer.controls import BarControls
from midi_rwkv.tokenizer.examples import ExampleBuilder, ExampleDrawer
from midi_rwkv.tokenizer.sequences import build_bar_infill, build_track_infill
from tests.data import test_compiled

# the fixtures of tests/data/test_compiled.py: its compiled corpus, the MIDI it was compiled from, its BPE tokenizer
bpe, chorale_source, compiled = test_compiled.bpe, test_compiled.chorale_source, test_compiled.compiled
PATHS = ("midi", "compiled")


@dataclass
class TokenizerPath:
    """One implementation of the contract: its codec, piece ``index`` of the corpus encoded whole (every track with
    notes, no shift), and the example drawer that encodes parts of it."""

    codec: TokenCodec
    encode: Callable[[int], EncodedBars]
    drawer: ExampleDrawer
    source: Callable[[int], object]  # what the drawer draws from for piece ``index``


@pytest.fixture(scope="module")
def paths(compiled, bpe) -> dict[str, TokenizerPath]:
    folder, out = compiled
    corpus, midi = CompiledCorpus(out), FolderCorpus(folder)

    @cache
    def score(index: int):
        return representable(midi.load(index), bpe)  # as compiled: unrepresentable notes dropped before any shift

    def midi_encode(index: int) -> EncodedBars:
        return bpe.encode(bpe.prepare(score(index), midi.ids[index]))

    def compiled_encode(index: int) -> EncodedBars:
        shard, piece = corpus.locate(index)
        return shard.encode(piece, shard.played_tracks(piece), 0)

    return {
        "midi": TokenizerPath(bpe.codec, cache(midi_encode), ExampleBuilder(bpe), score),
        "compiled": TokenizerPath(corpus.codec, cache(compiled_encode), CompiledExamples(corpus), lambda i: i),
    }


@pytest.fixture(params=PATHS)
def path(request, paths) -> TokenizerPath:
    return paths[request.param]


@pytest.fixture(scope="module")
def pieces(compiled) -> range:
    return range(len(CompiledCorpus(compiled[1])))


# --- conformance ----------------------------------------------------------------------------------------------------


def _members(protocol: type) -> dict[str, object]:
    return {n: v for n, v in vars(protocol).items() if not n.startswith("_") or n == "__getitem__"}


def _names(parameters: list[inspect.Parameter]) -> list[str]:
    return ["/" if p.kind is inspect.Parameter.POSITIONAL_ONLY else p.name for p in parameters]


def contract_gaps(obj: object, protocol: type) -> list[str]:
    """What ``obj`` lacks of ``protocol``: a member it has not, or a method it cannot take the protocol's arguments
    in (a parameter missing or renamed, or one more without a default). Positional-only parameters (``/``: a
    subscript's) are matched by place, not name; a builtin method (a list's ``__getitem__``) is taken as it is."""
    gaps = []
    for name, member in _members(protocol).items():
        if not hasattr(obj, name):
            gaps.append(f"{name}: missing")
            continue
        if isinstance(member, property):
            continue
        want = list(inspect.signature(member).parameters.values())[1:]  # without self
        try:
            got = list(inspect.signature(getattr(obj, name)).parameters.values())
        except ValueError:  # a builtin without a signature
            continue
        place = [("/" if w.kind is inspect.Parameter.POSITIONAL_ONLY else g.name) for w, g in zip(want, got)]
        if place != _names(want):
            gaps.append(f"{name}: takes {_names(got)}, the contract {_names(want)}")
        elif any(p.default is inspect.Parameter.empty for p in got[len(want) :]):
            gaps.append(f"{name}: needs more than the contract's {[p.name for p in want]}")
        elif any(w.default is not inspect.Parameter.empty and g.default is inspect.Parameter.empty
                 for w, g in zip(want, got)):
            gaps.append(f"{name}: needs an argument the contract lets callers leave out")
    return gaps


def assert_conforms(obj: object, protocol: type) -> None:
    assert isinstance(obj, protocol), f"{type(obj).__name__} is no {protocol.__name__}"
    assert contract_gaps(obj, protocol) == [], type(obj).__name__


def test_each_path_s_objects_implement_the_contract(path, pieces):
    assert_conforms(path.codec, TokenCodec)
    assert_conforms(path.codec.vocab, Vocabulary)
    for index in pieces:
        enc = path.encode(index)
        assert_conforms(enc, EncodedBars)
        assert_conforms(enc.piece, PieceBars)
        for track, row in zip(enc.tracks, enc.bars, strict=True):
            assert_conforms(track, TrackFacts)
            assert_conforms(row, BarRow)


class _OldEncodedPiece:  # the MIDI path's piece before the contract: it counted notes with the codec's vocabulary
    piece = tracks = bars = None

    def cost(self, track, bar): ...
    def bar_costs(self, tracks=None): ...
    def has_notes(self, track, start, end, codec): ...
    def bar_controls(self, track, span): ...
    def track_controls(self, track, window): ...


class _Renamed(_OldEncodedPiece):
    def has_notes(self, track, first, last): ...
    def bar_costs(self, tracks): ...


class _NoControls:
    piece = tracks = bars = None

    def cost(self, track, bar): ...


def test_the_conformance_check_sees_what_it_looks_for():
    assert contract_gaps(_OldEncodedPiece(), EncodedBars) == [
        "has_notes: needs more than the contract's ['track', 'start', 'end']"]
    assert contract_gaps(_Renamed(), EncodedBars) == [
        "bar_costs: needs an argument the contract lets callers leave out",
        "has_notes: takes ['track', 'first', 'last'], the contract ['track', 'start', 'end']",
    ]
    assert not isinstance(_NoControls(), EncodedBars)
    assert contract_gaps(_NoControls(), EncodedBars) == [
        f"{name}: missing" for name in ("bar_costs", "has_notes", "bar_controls", "track_controls")]
    assert not isinstance(object(), Vocabulary) and not isinstance({"Track_Start": 1}, Vocabulary)


# --- what each path promises ----------------------------------------------------------------------------------------


def test_the_layout_maps_real_bars_and_tracks_as_the_contract_says(path, pieces):
    for index in pieces:
        layout = path.encode(index).piece
        first = layout.first_token_bar
        assert len(first) == layout.num_bars + 1 and first[0] == 0
        assert all(a < b for a, b in zip(first, first[1:]))  # every real bar has tokenizer bars
        assert layout.token_span(0, layout.num_bars) == (0, first[-1])
        assert layout.token_span(1, 3) == (first[1], first[3])
        for start, end in ((2, 2), (3, 1), (-1, 2), (0, layout.num_bars + 1)):
            with pytest.raises(BarRangeError):
                layout.token_span(start, end)
        assert [layout.track_index(t) for t in layout.track_ids] == list(range(len(layout.track_ids)))
        with pytest.raises(TrackIndexError):
            layout.track_index(max(layout.track_ids) + 1)


def test_costs_and_notes_are_read_off_the_bars(path, pieces):
    for index in pieces:
        enc = path.encode(index)
        n_tracks, n_bars = len(enc.tracks), enc.piece.first_token_bar[-1]
        per_track = [[enc.cost(t, b) for b in range(n_bars)] for t in range(n_tracks)]
        assert per_track == [[len(enc.bars[t][b][0]) + len(enc.bars[t][b][1]) for b in range(n_bars)]
                             for t in range(n_tracks)]
        assert enc.bar_costs() == [sum(column) for column in zip(*per_track)]
        assert [enc.bar_costs([t]) for t in range(n_tracks)] == per_track
        assert enc.bar_costs([]) == [0] * n_bars
        assert all(type(c) is int for c in enc.bar_costs() + per_track[0])  # plain ints, as lists of ids give
        # every bar of every track has the piece's header; notes are what the controls count
        for t in range(n_tracks):
            assert [enc.bars[t][b][0] for b in range(n_bars)] == [enc.bars[0][b][0] for b in range(n_bars)]
            notes = [enc.has_notes(t, b, b + 1) for b in range(n_bars)]
            assert notes == [c.density > 0 for c in enc.bar_controls(t, (0, n_bars))]
            spans = [(a, b) for a in range(0, n_bars, 3) for b in (a, min(a + 2, n_bars))]
            assert [enc.has_notes(t, a, b) for a, b in spans] == [any(notes[a:b]) for a, b in spans]
            assert enc.has_notes(t, 0, n_bars)  # only tracks with notes are encoded


def test_the_vocabulary_names_atomic_tokens(path, pieces):
    vocab, codec = path.codec.vocab, path.codec
    for program in {t.program for i in pieces for t in path.encode(i).tracks} | {-1, 0}:
        assert vocab.program(program) == vocab[f"Program_{program}"]
    tokens = list(NAMED_TOKENS) + BarControls(3, (1, 2), (False, True, True, False, False)).tokens()
    assert codec.atomic(tokens) == tuple(vocab[t] for t in tokens)
    assert len(set(codec.atomic(tokens))) == len(tokens)
    with pytest.raises(KeyError):
        vocab["Program_999"]


# --- both paths, the same piece -------------------------------------------------------------------------------------


def _spans(enc: EncodedBars) -> list[tuple[int, int]]:
    n = enc.piece.num_bars
    return [(a, b) for a, b in [(0, 1), (1, 3), (n // 2, n // 2 + 2), (n - 4, n), (0, n)] if 0 <= a < b <= n]


def _outcome(build: Callable[[], object]) -> object:
    """What ``build`` gives, or the name of the error it raises (the paths must fail alike too)."""
    try:
        return build()
    except MidiRwkvError as err:
        return type(err).__name__


def _bar_infills(codec: TokenCodec, enc: EncodedBars) -> list:
    def build(track, span, layout):
        seq = build_bar_infill(enc, codec, track, span, max_len=400, rng=random.Random(track), layout=layout,
                               free=span[0] == 1)
        return seq.ids, seq.prompt_len, seq.track, seq.bars, seq.token_bars, seq.window

    return [_outcome(lambda: build(track, span, layout)) for track in enc.piece.track_ids for span in _spans(enc)
            for layout in ("file-order", "target-last")]


def _track_infills(codec: TokenCodec, enc: EncodedBars) -> list:
    def build(track, seed):
        seq = build_track_infill(enc, codec, track, max_len=500, rng=random.Random(seed))
        return seq.ids, seq.prompt_len, seq.track, seq.bars, seq.window

    return [_outcome(lambda: build(track, seed)) for track in enc.piece.track_ids for seed in range(3)]


OBSERVATIONS: dict[str, Callable[[TokenCodec, EncodedBars], object]] = {
    "layout": lambda codec, enc: (enc.piece.num_bars, enc.piece.first_token_bar, enc.piece.track_ids,
                                  [enc.piece.token_span(*s) for s in _spans(enc)]),
    "tracks": lambda codec, enc: [(t.program, t.is_drum) for t in enc.tracks],
    "bars": lambda codec, enc: [[enc.bars[t][b] for b in range(enc.piece.first_token_bar[-1])]
                                for t in range(len(enc.tracks))],
    "costs": lambda codec, enc: (enc.bar_costs(), enc.bar_costs([0, len(enc.tracks) - 1])),
    "notes": lambda codec, enc: [[enc.has_notes(t, *enc.piece.token_span(b, b + 1)) for b in range(enc.piece.num_bars)]
                                 for t in range(len(enc.tracks))],
    "bar controls": lambda codec, enc: [enc.bar_controls(t, (0, enc.piece.first_token_bar[-1]))
                                        for t in range(len(enc.tracks))],
    "track controls": lambda codec, enc: [enc.track_controls(t, enc.piece.token_span(*s))
                                          for t in range(len(enc.tracks)) for s in _spans(enc)],
    "program ids": lambda codec, enc: [codec.vocab.program(t.program) for t in enc.tracks],
    "control ids": lambda codec, enc: [codec.atomic(c.tokens()) for t in range(len(enc.tracks))
                                       for c in enc.bar_controls(t, (0, 4))],
    "bar infill": _bar_infills,
    "track infill": _track_infills,
}


@pytest.mark.parametrize("what", OBSERVATIONS)
def test_both_paths_see_the_same_piece(paths, pieces, what):
    observe = OBSERVATIONS[what]
    for index in pieces:
        midi, fast = paths["midi"], paths["compiled"]
        assert observe(fast.codec, fast.encode(index)) == observe(midi.codec, midi.encode(index)), index


@pytest.mark.parametrize("what", ["layout", "tracks", "bars", "costs", "notes", "track controls", "bar infill"])
def test_both_drawers_encode_the_same_tracks_at_the_same_shift(paths, pieces, what):
    observe, rng = OBSERVATIONS[what], random.Random(0)
    midi, fast = paths["midi"], paths["compiled"]
    shifted = 0
    for index in pieces:
        played = midi.drawer.played_tracks(midi.source(index))
        assert fast.drawer.played_tracks(fast.source(index)) == played
        encoded = midi.encode(index).piece.track_ids  # the played tracks the vocabulary can write
        for _ in range(3):
            tracks = sorted(rng.sample(encoded, rng.randint(1, len(encoded))))
            low, high = midi.drawer.shift_range(midi.source(index), tracks)
            assert fast.drawer.shift_range(fast.source(index), tracks) == (low, high)
            offsets = [o for o in range(low, high + 1) if abs(o) <= 6]  # none: drawn unshifted, as the drawer does
            shift = (rng.choice(offsets), 0) if offsets else None
            want = midi.drawer.encode(midi.source(index), tracks, shift)
            got = fast.drawer.encode(fast.source(index), tracks, shift)
            assert got.piece.track_ids == want.piece.track_ids == tracks  # both number tracks as the file does
            assert observe(fast.codec, got) == observe(midi.codec, want), (index, tracks, shift)
            shifted += bool(shift and shift[0])
    assert shifted >= 5
