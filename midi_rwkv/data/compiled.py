"""A compiled corpus: every piece tokenized once, read back as memory-mapped arrays.

Training draws tens of thousands of examples; parsing MIDI and running MidiTok for each one costs more
than the model step on a CPU. A compiled corpus holds, per piece, what the example drawer needs and
nothing it would have to recompute:

  * the tokenizer-bar grid (``first_token_bar`` per real bar) and each bar's header ids;
  * per track with notes: program, drum flag, the real bars it spans alone, and the pitch shifts that keep
    it in range; per encoded track and per allowed shift (-6..6 semitones), the BPE ids of every bar body;
  * per encoded track and bar, the :class:`~midi_rwkv.tokenizer.controls.BarStatistics` the controls are
    made of.

So :class:`CompiledExamples` draws exactly the examples the MIDI-based
:class:`~midi_rwkv.tokenizer.examples.ExampleBuilder` draws for the same seeds, with list slicing instead of
MidiTok (``tests/data/test_compiled.py`` checks it token for token): :class:`CompiledCodec` and
:class:`CompiledPiece` implement the tokenizer contract (``midi_rwkv.tokenizer.contract``) that the MIDI path's
``Codec`` and ``EncodedPiece`` do (``tests/tokenizer/test_contract.py`` runs one suite over both). Two rules are
the compiled corpus's: notes the vocabulary cannot hold are dropped before a piece is shifted (not after), and a
piece is compiled whole or not at all (a metre the tokenizer cannot write anywhere in it leaves it out).

Nothing here imports MidiTok or symusic: a machine with only PyTorch and numpy trains from it.
Writing one is ``midi_rwkv.data.compile``.

Layout of a shard folder (one per source; arrays are ``.npy``):
  meta.json      format, tokenizer hash, vocabulary facts, source, pieces (id, song, split), skipped
  tokenizer.json the tokenizer it was compiled with (copied, so training can ship it)
  words          uint16 ids of every bar (headers and bodies), row after row
  bar_len        uint16, ids in each bar, bar after bar
  row_bar        int64, the first bar of each row (a row: one piece's headers, or one track's bodies at one shift)
  row_word       int64, the first id of each row in ``words``
  piece_*        per piece: first real bar in ``first_bar``, real bars, token bars, first track, tracks, header row
  first_bar      int32, ``first_token_bar`` of every piece, one run of real bars + 1 per piece
  track_*        per track with notes: original index, program, drum, encoded, real bars alone, shift range,
                 first statistics row, first of its 2 * max_shift + 1 shift rows in ``shift_row``
  shift_row      int64, the body row of each (track, shift), -1 where the shift is not allowed
  stat_*         per encoded track and token bar: count, poly_min, poly_max, durations (bits), pairs, repeats
                 (integers, so the repetition shares they make are exactly the MIDI builder's)
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midi_rwkv.data.dataset import DrawnDataset
from midi_rwkv.errors import BarRangeError, EmptyScoreError, MidiRwkvError, TrackIndexError
from midi_rwkv.tokenizer.contract import BarIds
from midi_rwkv.tokenizer.controls import (
    DURATIONS,
    BarControls,
    BarStatistics,
    TrackControls,
    controls_of_bars,
    controls_of_track,
)
from midi_rwkv.tokenizer.examples import ExampleConfig, ExampleDrawer
from midi_rwkv.tokenizer.sequences import InfillSequence

FORMAT = 3
ARRAYS = (
    "words", "bar_len", "row_bar", "row_word", "first_bar",
    "piece_first", "piece_bars", "piece_token_bars", "piece_track", "piece_tracks", "piece_header",
    "track_index", "track_program", "track_drum", "track_encoded", "track_bars", "track_low", "track_high",
    "track_stat", "track_shift",
    "shift_row",
    "stat_count", "stat_poly_min", "stat_poly_max", "stat_durations", "stat_pairs", "stat_repeats",
)  # fmt: skip
NO_SHIFT = -128  # track_low/high of a drum track: it is never shifted, and never limits the others
# The tokens the sequence builders name; a compiled corpus records their ids so it needs no tokenizer to build.
NAMED_TOKENS = ("PAD_None", "Track_Start", "Track_End", "Infill_Bar", "Infill_Track", "FillBar_Start", "FillBar_End")


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CompiledVocab:
    """The lookups the sequence builders make (a :class:`~midi_rwkv.tokenizer.contract.Vocabulary`), from a shard's
    meta.json."""

    def __init__(self, ids: dict[str, int]):
        self.ids = ids

    def __getitem__(self, token: str) -> int:
        return self.ids[token]

    def program(self, program: int) -> int:
        return self.ids[f"Program_{program}"]


class CompiledCodec:
    """What the builders use of a :class:`~midi_rwkv.tokenizer.codec.Codec` (a
    :class:`~midi_rwkv.tokenizer.contract.TokenCodec`): atomic tokens' ids."""

    def __init__(self, ids: dict[str, int], vocab_size: int):
        self.vocab = CompiledVocab(ids)
        self.vocab_size = vocab_size

    def atomic(self, tokens: list[str]) -> tuple[int, ...]:
        return tuple(self.vocab.ids[t] for t in tokens)


@dataclass
class _Track:
    program: int
    is_drum: bool


class _PieceBars:
    """The bar grid and track numbering of one drawn piece (a :class:`~midi_rwkv.tokenizer.contract.PieceBars`,
    what the builders read of a ``Piece``)."""

    def __init__(self, name: str, first_token_bar: list[int], track_ids: list[int]):
        self.name, self.first_token_bar, self.track_ids = name, first_token_bar, track_ids
        self.num_bars = len(first_token_bar) - 1

    def track_index(self, original_track: int) -> int:
        if original_track not in self.track_ids:
            raise TrackIndexError(f"{self.name}: track {original_track} is not among the drawn tracks")
        return self.track_ids.index(original_track)

    def token_span(self, start: int, end: int) -> tuple[int, int]:
        if not 0 <= start < end <= self.num_bars:
            raise BarRangeError(f"{self.name}: bars {start}:{end} are empty or outside the piece ({self.num_bars})")
        return self.first_token_bar[start], self.first_token_bar[end]


class _Row:
    """Bars of one stored row, each built as a tuple of ids only when a builder reads it."""

    def __init__(self, words: list[int], ends: list[int]):
        self.words, self.starts, self.ends = words, [0, *ends[:-1]], ends

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, bar: int) -> tuple[int, ...]:
        return tuple(self.words[self.starts[bar] : self.ends[bar]])


class _TrackBars:
    """One track's (header, body) per bar, as ``EncodedPiece.bars[track]`` is."""

    def __init__(self, headers: _Row, bodies: _Row):
        self.headers, self.bodies = headers, bodies

    def __len__(self) -> int:
        return len(self.bodies)

    def __getitem__(self, bar: int) -> BarIds:
        return self.headers[bar], self.bodies[bar]

    def __iter__(self):
        return (self[b] for b in range(len(self)))


class CompiledPiece:
    """A piece read from a shard, what :class:`~midi_rwkv.tokenizer.sequences.EncodedPiece` is on the MIDI path (a
    :class:`~midi_rwkv.tokenizer.contract.EncodedBars`): note counts and controls come from the stored statistics.

    ``lengths`` [track, bar]: model ids of each bar (header and body), for the builders' window arithmetic.
    """

    def __init__(self, piece: _PieceBars, tracks: list[_Track], bars: list[_TrackBars], lengths: np.ndarray,
                 statistics: list[BarStatistics]):
        self.piece, self.tracks, self.bars = piece, tracks, bars
        self._statistics = statistics
        self._lengths = lengths
        # the builders ask these per bar, thousands of times an example: plain lists, not numpy
        self._notes_before = [[0, *np.cumsum(s.count).tolist()] for s in statistics]
        self._costs = lengths.tolist()

    def cost(self, track: int, bar: int) -> int:
        return self._costs[track][bar]

    def bar_costs(self, tracks: Sequence[int] | None = None) -> list[int]:
        rows = self._lengths if tracks is None else self._lengths[list(tracks)]
        return rows.sum(axis=0).tolist() if len(rows) else [0] * self._lengths.shape[1]

    def has_notes(self, track: int, start: int, end: int) -> bool:
        return self._notes_before[track][end] > self._notes_before[track][start]

    def statistics(self, track: int) -> BarStatistics:
        """The stored per-bar statistics of ``track`` (what ``EncodedPiece.statistics`` computes from notes)."""
        return self._statistics[track]

    def bar_controls(self, track: int, span: tuple[int, int]) -> list[BarControls]:
        return controls_of_bars(self._statistics[track], self.tracks[track].is_drum, *span)

    def track_controls(self, track: int, window: tuple[int, int]) -> TrackControls:
        return controls_of_track(self._statistics[track], self.tracks[track].is_drum, *window)


class Shard:
    """One compiled source (a folder); arrays are memory-mapped, so opening one costs nothing."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise MidiRwkvError(f"{self.folder}: not a compiled corpus shard (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise MidiRwkvError(f"{self.folder}: compiled with format {self.meta.get('format')}, this is {FORMAT}")
        self.a = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        for name in ARRAYS:  # the small per-piece and per-track tables: lists, fast to index one value at a time
            if name.startswith(("piece_", "track_")) or name in ("row_bar", "row_word", "first_bar", "shift_row"):
                self.a[name] = self.a[name].tolist()
        self.ids = [p["id"] for p in self.meta["pieces"]]
        self.max_shift = self.meta["max_shift"]

    def __len__(self) -> int:
        return len(self.ids)

    def _row(self, row: int, bars: int) -> tuple[_Row, np.ndarray]:
        """The first ``bars`` bars of a row, and their lengths."""
        first = self.a["row_bar"][row]
        lengths = np.asarray(self.a["bar_len"][first : first + bars], dtype=np.int64)
        ends = np.cumsum(lengths).tolist()
        start = self.a["row_word"][row]
        return _Row(self.a["words"][start : start + (ends[-1] if ends else 0)].tolist(), ends), lengths

    def _statistics(self, track: int, bars: int) -> BarStatistics:
        a, first = self.a, int(self.a["track_stat"][track])
        bits = np.asarray(a["stat_durations"][first : first + bars])
        return BarStatistics(
            np.asarray(a["stat_count"][first : first + bars]),
            np.asarray(a["stat_poly_min"][first : first + bars]),
            np.asarray(a["stat_poly_max"][first : first + bars]),
            (bits[:, None] >> np.arange(len(DURATIONS))) & 1 > 0,
            np.asarray(a["stat_pairs"][first : first + bars]),
            np.asarray(a["stat_repeats"][first : first + bars]),
        )

    def played_tracks(self, piece: int) -> list[int]:
        """Original indices of the piece's tracks that have notes."""
        first, count = self.a["piece_track"][piece], self.a["piece_tracks"][piece]
        return self.a["track_index"][first : first + count]

    def piece_facts(self, piece: int) -> dict:
        """Real bars, encoded tracks (original indices), drum tracks, and per track its notes per real bar."""
        a = self.a
        first, count = a["piece_track"][piece], a["piece_tracks"][piece]
        rows = [r for r in range(first, first + count) if a["track_encoded"][r]]
        grid = a["first_bar"][a["piece_first"][piece] : a["piece_first"][piece] + a["piece_bars"][piece] + 1]
        by_track = {a["track_index"][r]: r for r in rows}

        def notes(track: int) -> np.ndarray:
            start = a["track_stat"][by_track[track]]
            counts = np.asarray(a["stat_count"][start : start + grid[-1]])
            return np.add.reduceat(counts, grid[:-1]) if len(counts) else np.zeros(len(grid) - 1, int)

        return {"bars": a["piece_bars"][piece], "tracks": list(by_track),
                "drums": {t for t, r in by_track.items() if a["track_drum"][r]}, "notes": notes}

    def _track_rows(self, piece: int, tracks: list[int]) -> list[int]:
        first, count = self.a["piece_track"][piece], self.a["piece_tracks"][piece]
        index = self.a["track_index"][first : first + count]
        return [first + index.index(t) for t in tracks]

    def shift_range(self, piece: int, tracks: list[int]) -> tuple[int, int]:
        """(lowest, highest) pitch shift that keeps every melodic track of ``tracks`` in its range."""
        rows = self._track_rows(piece, tracks)
        low, high = -128, 128
        for r in rows:
            if not self.a["track_drum"][r]:
                low, high = max(low, int(self.a["track_low"][r])), min(high, int(self.a["track_high"][r]))
        return low, high

    def encode(self, piece: int, tracks: list[int], shift: int) -> CompiledPiece:
        """The piece with only ``tracks`` (original indices, in file order) kept and shifted by ``shift``
        semitones: what ``InfillTokenizer.encode(prepare(...))`` gives for the same tracks and shift."""
        a, name = self.a, self.ids[piece]
        if abs(shift) > self.max_shift:
            raise MidiRwkvError(f"{name}: a shift of {shift} is beyond the compiled {self.max_shift} semitones")
        rows = self._track_rows(piece, tracks)
        spans = [int(a["track_bars"][r]) for r in rows if a["track_bars"][r] > 0]
        encoded = [r for r in rows if a["track_encoded"][r]]
        if not spans or not encoded:
            raise EmptyScoreError(f"{name}: no track has notes the tokenizer can represent")
        first = int(a["piece_first"][piece])
        grid = a["first_bar"][first : first + max(spans) + 1]
        token_bars = grid[-1]
        headers, header_lengths = self._row(a["piece_header"][piece], token_bars)
        bars, lengths, tracks_out, statistics = [], [], [], []
        for r in encoded:
            moved = 0 if a["track_drum"][r] else shift  # drums are never shifted
            body_row = a["shift_row"][a["track_shift"][r] + moved + self.max_shift]
            if body_row < 0:
                raise MidiRwkvError(f"{name}: track {a['track_index'][r]} cannot be shifted by {shift}")
            bodies, body_lengths = self._row(body_row, token_bars)
            bars.append(_TrackBars(headers, bodies))
            lengths.append(header_lengths + body_lengths)
            tracks_out.append(_Track(a["track_program"][r], bool(a["track_drum"][r])))
            statistics.append(self._statistics(r, token_bars))
        piece_bars = _PieceBars(name, grid, [a["track_index"][r] for r in encoded])
        return CompiledPiece(piece_bars, tracks_out, bars, np.stack(lengths), statistics)


class CompiledCorpus:
    """One or more shards (``compiled:FOLDER``: the folder of one shard, or a folder of shards) read as one.

    Pieces are addressed by one index over all shards; ``ids``, ``songs`` and ``splits`` are per piece.
    """

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if (folder / "meta.json").is_file():
            shards = [folder]
        else:
            shards = sorted(  # a folder being written (or replaced) is hidden: .NAME.*
                p for p in folder.iterdir() if not p.name.startswith(".") and (p / "meta.json").is_file()
            ) if folder.is_dir() else []
        if not shards:
            raise MidiRwkvError(f"{folder}: no compiled corpus here (run 'midi-rwkv compile-corpus')")
        self.shards = [Shard(s) for s in shards]
        hashes = {s.meta["tokenizer_sha256"] for s in self.shards}
        if len(hashes) > 1:
            raise MidiRwkvError(f"{folder}: its shards were compiled with different tokenizers; compile them again")
        self.meta = self.shards[0].meta
        self.name = f"compiled:{folder.resolve()}"
        self.ids, self.songs, self.splits, self.lengths, self._where = [], [], [], [], []
        for s, shard in enumerate(self.shards):
            for i, piece in enumerate(shard.meta["pieces"]):
                self.ids.append(f"{shard.meta['label']}/{piece['id']}")
                self.songs.append(f"{shard.meta['label']}/{piece['song']}")
                self.splits.append(piece["split"])
                self.lengths.append(piece["tokens"])
                self._where.append((s, i))
        self.codec = CompiledCodec(self.meta["token_ids"], self.meta["vocab_size"])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def vocab_size(self) -> int:
        return self.meta["vocab_size"]

    @property
    def tokenizer_file(self) -> Path:
        return self.shards[0].folder / "tokenizer.json"

    @property
    def tokens(self) -> dict[str, int]:
        """Model tokens per split, each piece counted once as a plain multitrack sequence (no shift)."""
        out = {"train": 0, "validation": 0, "test": 0}
        for split, length in zip(self.splits, self.lengths):
            out[split] += length
        return out

    def unlearned_ids(self) -> frozenset[int]:
        return frozenset(self.meta["unlearned_ids"])

    def split(self, name: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == name]

    def locate(self, index: int) -> tuple[Shard, int]:
        s, i = self._where[index]
        return self.shards[s], i


class CompiledExamples(ExampleDrawer):
    """Random examples drawn from a compiled corpus; sources are piece indices of ``corpus``.

    Velocity shifts are not compiled (docs/original-release.md#velocity-jitter): ``velocity_offset`` must be 0.
    """

    def __init__(self, corpus: CompiledCorpus, config: ExampleConfig | None = None):
        super().__init__(corpus.codec, config)
        self.corpus = corpus
        if self.config.velocity_offset:
            raise MidiRwkvError("a compiled corpus holds no velocity shifts: velocity_offset must be 0")
        compiled = min(s.max_shift for s in corpus.shards)
        if self.config.pitch_offset > compiled:
            raise MidiRwkvError(f"pitch_offset {self.config.pitch_offset} is beyond the compiled {compiled} semitones")

    def played_tracks(self, index: int) -> list[int]:
        shard, piece = self.corpus.locate(index)
        return shard.played_tracks(piece)

    def shift_range(self, index: int, tracks: list[int]) -> tuple[int, int]:
        shard, piece = self.corpus.locate(index)
        return shard.shift_range(piece, tracks)

    def encode(self, index: int, tracks: list[int], shift: tuple[int, int] | None) -> CompiledPiece:
        shard, piece = self.corpus.locate(index)
        return shard.encode(piece, tracks, shift[0] if shift else 0)

    def draw(self, index: int, seed: int) -> InfillSequence | None:
        return self(index, random.Random(seed))


class CompiledDataset(DrawnDataset):
    """Training examples drawn from pieces ``indices`` of a compiled corpus."""

    def __init__(self, corpus: CompiledCorpus, indices: list[int], config: ExampleConfig):
        super().__init__(CompiledExamples(corpus, config), indices, corpus.unlearned_ids())
