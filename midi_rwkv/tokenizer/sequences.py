"""Single-section infilling sequences: the masked bars move to the end of the sequence.

Bar infill (track ``t``, tokenizer bars ``[a, b)``), in model ids::

    for each track (in the file's order, or track t last in the target-last layout; other tracks only if they
    have notes in the window):
        Track_Start Program_p  <bars of the window>  Track_End
            (track t: its bars a..b-1 replaced by one Infill_Bar per bar)
    FillBar_Start
        for each masked bar: <header> <bar controls> <body>
    FillBar_End

The *prompt* runs up to and including the first masked bar's controls; the *target* is the
rest. Bar headers and time signatures come from the piece, so the real metre is kept.

Track infill (track ``w``)::

    <other tracks as above>  Infill_Track  Track_Start Program_w <track controls> <bars> Track_End

When the piece is longer than ``max_len`` tokens, a window of whole bars around the section is
kept; the section itself is never cut (a section that cannot fit raises SequenceTooLongError).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from midi_rwkv.errors import ControlError, SequenceTooLongError
from midi_rwkv.tokenizer.controls import (
    BarControls,
    BarStatistics,
    TrackControls,
    bar_statistics,
    check_drum_controls,
    controls_of_bars,
    controls_of_track,
)

if TYPE_CHECKING:  # the builders run on a compiled corpus too, where neither MidiTok nor symusic is installed
    from midi_rwkv.tokenizer.codec import Codec
    from midi_rwkv.tokenizer.contract import BarIds, EncodedBars, PieceBars, TokenCodec
    from midi_rwkv.tokenizer.remi import TrackBars
    from midi_rwkv.tokenizer.score import Piece


_MAX_TRACK_CONTROLS = 10  # polyphony 2 + density 2 + durations 5 + repetition 1

# Where bar infill writes the infilled track among the others; a model is trained with one and infills with it.
# target-last puts its context right before the section, where a recurrent state remembers it best
# (docs/original-release.md#track-order).
LAYOUTS = ("file-order", "target-last")


def stored_layout(layout: str, source: object, error: type[Exception]) -> str:
    """A layout read from a model's file (``source``): one of :data:`LAYOUTS`, else ``error``."""
    if layout not in LAYOUTS:
        raise error(f"{source}: unknown layout '{layout}' (a newer midi-rwkv's model?)")
    return layout


@dataclass
class SectionBar:
    """One masked bar in model ids; ``body`` is empty when built for generation."""

    header: tuple[int, ...]
    controls: tuple[int, ...]
    body: tuple[int, ...]


@dataclass
class InfillSequence:
    """An infilling sequence and where it came from."""

    ids: list[int]
    prompt_len: int
    kind: str  # "bar" or "track"
    track: int  # the user's (original) track index
    bars: tuple[int, int]  # real bars: the masked span (bar infill) or the window (track infill)
    token_bars: tuple[int, int]  # the same, in tokenizer bars
    window: tuple[int, int]  # tokenizer bars of context kept
    section: list[SectionBar] = field(default_factory=list)

    @property
    def prompt(self) -> list[int]:
        return self.ids[: self.prompt_len]

    @property
    def target(self) -> list[int]:
        return self.ids[self.prompt_len :]


@dataclass
class EncodedPiece:
    """A piece's tracks as model ids, per bar: the MIDI path's :class:`~midi_rwkv.tokenizer.contract.EncodedBars`.

    Build it with :func:`encode_piece`.
    """

    piece: Piece
    tracks: list[TrackBars]  # base ids
    bars: list[list[BarIds]]  # [track][bar] -> (header, body) model ids
    notes: list[list[int]]  # [track][bar] -> notes that start in the bar
    _statistics: dict[int, BarStatistics] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self._notes_before = [list(itertools.accumulate(counts, initial=0)) for counts in self.notes]

    def cost(self, track: int, bar: int) -> int:
        header, body = self.bars[track][bar]
        return len(header) + len(body)

    def bar_costs(self, tracks: Sequence[int] | None = None) -> list[int]:
        """Model tokens of each tokenizer bar over ``tracks`` (default: all), a new list."""
        tracks = range(len(self.bars)) if tracks is None else tracks
        return [sum(self.cost(t, b) for t in tracks) for b in range(len(self.piece.token_bars))]

    def length(self) -> int:
        """Model tokens of the whole piece as a plain multitrack sequence (Track_Start Program bars Track_End)."""
        return sum(3 + sum(self.cost(t, b) for b in range(len(bars))) for t, bars in enumerate(self.bars))

    def base_length(self) -> int:
        """The same, in base (pre-BPE) tokens."""
        return sum(3 + sum(len(h) + len(b) for h, b in track.bars) for track in self.tracks)

    def has_notes(self, track: int, start: int, end: int) -> bool:
        """Whether some note of ``track`` starts in bars ``[start, end)``."""
        return self._notes_before[track][end] > self._notes_before[track][start]

    def statistics(self, track: int) -> BarStatistics:
        """The per-bar statistics of ``track`` on the whole tokenizer-bar grid (computed once)."""
        if track not in self._statistics:
            piece = self.piece
            self._statistics[track] = bar_statistics(
                piece.score.tracks[track], piece.token_bars, piece.score.ticks_per_quarter
            )
        return self._statistics[track]

    def bar_controls(self, track: int, span: tuple[int, int]) -> list[BarControls]:
        """The controls of tokenizer bars ``span`` of ``track``, each on its own."""
        return controls_of_bars(self.statistics(track), self.tracks[track].is_drum, *span)

    def track_controls(self, track: int, window: tuple[int, int]) -> TrackControls:
        """The controls of ``track`` over tokenizer bars ``window``."""
        return controls_of_track(self.statistics(track), self.tracks[track].is_drum, *window)


def encode_piece(piece: Piece, codec: Codec) -> EncodedPiece:
    """Encode every bar of every track once (BPE words are batched and cached)."""
    from midi_rwkv.tokenizer.remi import encode_tracks  # MidiTok: not needed by the builders below

    tracks = encode_tracks(piece, codec.vocab)
    words = [w for t in tracks for bar in t.bars for w in bar]
    encoded = iter(codec.encode_words(words))
    bars = [[(next(encoded), next(encoded)) for _ in t.bars] for t in tracks]
    notes = [[codec.vocab.count_notes(body) for _, body in t.bars] for t in tracks]
    return EncodedPiece(piece, tracks, bars, notes)


def _grow_window(costs: list[int], core: tuple[int, int], budget: int, limit: tuple[int, int], rng) -> tuple[int, int]:
    """Widen the real-bar window ``core`` one bar at a time while the bars fit in ``budget``.

    Without ``rng`` the side with less context so far goes first (left on ties); with it, a random
    side, so training sees sections at varied places in the window.
    """
    left, right = core
    while True:
        sides = []
        if left > limit[0] and costs[left - 1] <= budget:
            sides.append(-1)
        if right < limit[1] and costs[right] <= budget:
            sides.append(+1)
        if not sides:
            return left, right
        if rng is not None:
            side = rng.choice(sides)
        else:
            side = min(sides, key=lambda d: (core[0] - left) if d < 0 else (right - core[1]))
        if side < 0:
            left -= 1
            budget -= costs[left]
        else:
            budget -= costs[right]
            right += 1


def _real_bar_costs(piece: PieceBars, token_costs: list[int]) -> list[int]:
    first = piece.first_token_bar
    return [sum(token_costs[first[i] : first[i + 1]]) for i in range(piece.num_bars)]


def _context_tracks(enc: EncodedBars, window: tuple[int, int], keep: int) -> list[int]:
    return [i for i in range(len(enc.tracks)) if i == keep or enc.has_notes(i, *window)]


def _emit_track(
    enc: EncodedBars, codec: TokenCodec, index: int, window: tuple[int, int], out: list[int], mask=None, extra=()
) -> None:
    vocab = codec.vocab
    out += [vocab["Track_Start"], vocab.program(enc.tracks[index].program), *extra]
    for bar in range(*window):
        if mask and mask[0] <= bar < mask[1]:
            if bar == mask[0]:
                out += [vocab["Infill_Bar"]] * (mask[1] - mask[0])
            continue
        header, body = enc.bars[index][bar]
        out += header
        out += body
    out.append(vocab["Track_End"])


def resolve_bar_controls(enc: EncodedBars, track: int, span: tuple[int, int], controls) -> list[BarControls]:
    """The controls of each masked tokenizer bar: the given ones, or those of the original bars."""
    piece = enc.piece
    if controls is None:
        return enc.bar_controls(track, span)
    controls = list(controls)
    if len(controls) != span[1] - span[0]:
        raise ControlError(f"{len(controls)} bar controls given for {span[1] - span[0]} masked bars")
    for c in controls:
        check_drum_controls(piece.track_ids[track], enc.tracks[track].is_drum, c.polyphony, c.durations)
    return controls


def build_bar_infill(
    enc: EncodedBars,
    codec: TokenCodec,
    track: int,
    bars: tuple[int, int],
    *,
    controls: list[BarControls] | None = None,
    context_bars: int | None = None,
    max_len: int | None = None,
    with_target: bool = True,
    rng: random.Random | None = None,
    free: bool = False,
    layout: str = "file-order",
) -> InfillSequence:
    """A bar-infill sequence for the user's ``track`` and real bars ``[start, end)``.

    Args:
        controls: one per masked tokenizer bar; default: those of the original bars.
        free: no bar controls at all (the model chooses; training shows it some examples like this).
        context_bars: at most this many real bars of context on each side (default: all).
        max_len: the whole sequence (prompt and target) fits in this many tokens.
        with_target: include the original bodies of the masked bars (training) or not (generation).
        rng: widen the context window towards random sides (training) instead of evenly.
        layout: the one the reading model was trained with (:data:`LAYOUTS`): target-last writes ``track`` after
            the other tracks, next to the section; file-order keeps the file's order.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    piece = enc.piece
    t = piece.track_index(track)
    span = piece.token_span(*bars)
    controls = resolve_bar_controls(enc, t, span, controls)
    section = []
    for bar, control in zip(range(*span), controls):
        header, body = enc.bars[t][bar]
        tokens = () if free else codec.atomic(control.tokens())
        section.append(SectionBar(header, tokens, body if with_target else ()))
    n_tracks = len(enc.tracks)
    section_cost = sum(len(s.header) + len(s.controls) + len(s.body) for s in section) + 2
    costs = enc.bar_costs()  # every track; the masked bars of track t are not in the context:
    costs[span[0] : span[1]] = [costs[b] - enc.cost(t, b) for b in range(*span)]
    fixed = 3 * n_tracks + (span[1] - span[0]) + section_cost + sum(costs[span[0] : span[1]])
    limit = (0, piece.num_bars)
    if context_bars is not None:
        limit = (max(0, bars[0] - context_bars), min(piece.num_bars, bars[1] + context_bars))
    budget = (max_len if max_len is not None else 1 << 62) - fixed
    if budget < 0:
        raise SequenceTooLongError(
            f"{piece.name}: bars {bars[0]}:{bars[1]} need {fixed} tokens, more than the maximum {max_len}"
        )
    real = _grow_window(_real_bar_costs(piece, costs), tuple(bars), budget, limit, rng)
    window = (piece.first_token_bar[real[0]], piece.first_token_bar[real[1]])
    vocab = codec.vocab
    ids: list[int] = []
    tracks = _context_tracks(enc, window, keep=t)
    if layout == "target-last":
        tracks = [i for i in tracks if i != t] + [t]
    for i in tracks:
        _emit_track(enc, codec, i, window, ids, mask=span if i == t else None)
    ids.append(vocab["FillBar_Start"])
    prompt_len = len(ids) + len(section[0].header) + len(section[0].controls)
    if with_target:
        for s in section:
            ids += s.header
            ids += s.controls
            ids += s.body
        ids.append(vocab["FillBar_End"])
    else:  # the later bars' headers and controls are injected during generation (see ``section``)
        ids += section[0].header
        ids += section[0].controls
    return InfillSequence(ids, prompt_len, "bar", track, tuple(bars), span, window, section)


def build_track_infill(
    enc: EncodedBars,
    codec: TokenCodec,
    track: int,
    *,
    controls: TrackControls | None = None,
    max_len: int | None = None,
    with_target: bool = True,
    rng: random.Random | None = None,
) -> InfillSequence:
    """A track-infill sequence: ``track`` is generated last, after the other tracks, with track controls.

    When the piece does not fit in ``max_len``, a window of bars is kept, starting at a random bar
    with ``rng`` (training) or at the first bar.
    """
    piece = enc.piece
    w = piece.track_index(track)
    n_tracks = len(enc.tracks)
    costs = _real_bar_costs(piece, enc.bar_costs())
    budget = (max_len if max_len is not None else 1 << 62) - (3 * n_tracks + 1 + _MAX_TRACK_CONTROLS)
    start = rng.randrange(piece.num_bars) if rng is not None else 0
    if budget < costs[start]:
        raise SequenceTooLongError(f"{piece.name}: bar {start} of all tracks does not fit in {max_len} tokens")
    real = _grow_window(costs, (start, start + 1), budget - costs[start], (0, piece.num_bars), None)
    window = (piece.first_token_bar[real[0]], piece.first_token_bar[real[1]])
    if controls is None:
        controls = enc.track_controls(w, window)
    else:
        check_drum_controls(track, enc.tracks[w].is_drum, controls.polyphony, controls.durations)
    vocab = codec.vocab
    ids: list[int] = []
    for i in _context_tracks(enc, window, keep=-1):
        if i != w:
            _emit_track(enc, codec, i, window, ids)
    ids.append(vocab["Infill_Track"])
    control_ids = codec.atomic(controls.tokens())
    prompt_len = len(ids) + 2 + len(control_ids)
    if with_target:
        _emit_track(enc, codec, w, window, ids, extra=control_ids)
    else:
        ids += [vocab["Track_Start"], vocab.program(enc.tracks[w].program), *control_ids]
    return InfillSequence(ids, prompt_len, "track", track, real, window, window)


def build_track_generation(
    enc: EncodedPiece,
    codec: Codec,
    program: int,
    controls: TrackControls,
    *,
    replace: int | None = None,
    max_len: int | None = None,
) -> InfillSequence:
    """The prompt for writing a whole track (every bar of the piece) after all the others.

    ``replace``: the user's track that is regenerated (left out of the context, its program kept); ``None``
    writes a new track. The prompt ends with the first bar's header; the later headers come from the
    piece (``section``), as in bar infill. The window is the whole piece, unless ``max_len`` (for the
    prompt alone) asks for fewer bars, which are then taken from the start.
    """
    piece = enc.piece
    skip = piece.track_index(replace) if replace is not None else -1
    context = [i for i in _context_tracks(enc, (0, len(piece.token_bars)), keep=-1) if i != skip]
    costs = _real_bar_costs(piece, enc.bar_costs(context))
    budget = (max_len if max_len is not None else 1 << 62) - (3 * len(context) + 4 + _MAX_TRACK_CONTROLS)
    real = _grow_window(costs, (0, 1), budget - costs[0], (0, piece.num_bars), None) if budget >= costs[0] else None
    if real is None:
        raise SequenceTooLongError(f"{piece.name}: the first bar of the other tracks does not fit in {max_len} tokens")
    window = (piece.first_token_bar[real[0]], piece.first_token_bar[real[1]])
    vocab = codec.vocab
    ids: list[int] = []
    for i in context:
        _emit_track(enc, codec, i, window, ids)
    ids += [vocab["Infill_Track"], vocab["Track_Start"], vocab.program(program), *codec.atomic(controls.tokens())]
    grid = piece.token_bars[window[0] : window[1]]
    headers = codec.encode_words([vocab.header(b.numerator, b.denominator) for b in grid])
    ids += headers[0]
    section = [SectionBar(tuple(h), (), ()) for h in headers]
    track = replace if replace is not None else len(piece.original.tracks)
    return InfillSequence(ids, len(ids), "track", track, real, window, window, section)
