"""The tokenizer contract: what the sequence builders and the example drawer read of a vocabulary, a codec and an
encoded piece.

Two paths implement it. The MIDI path (:class:`~midi_rwkv.tokenizer.codec.Codec`,
:class:`~midi_rwkv.tokenizer.remi.BaseVocab`, :class:`~midi_rwkv.tokenizer.score.Piece`,
:class:`~midi_rwkv.tokenizer.sequences.EncodedPiece`) runs MidiTok on a score; the compiled path
(``midi_rwkv.data.compiled``) reads the same ids from arrays, without MidiTok or symusic. The code written for both
(:func:`~midi_rwkv.tokenizer.sequences.build_bar_infill`, :func:`~midi_rwkv.tokenizer.sequences.build_track_infill`,
:class:`~midi_rwkv.tokenizer.examples.ExampleDrawer`) uses only the members below, so both paths give the same
sequences for the same piece (``tests/tokenizer/test_contract.py`` runs one suite over both).

Code that needs more (generation prompts, merging, inference: ``Codec.encode_words``, ``Piece.score``...) takes the
MIDI classes themselves.

Bars are counted two ways, as in :class:`~midi_rwkv.tokenizer.score.Piece`: *real* bars (the user's) and *tokenizer*
bars (a real bar whose metre the vocabulary lacks is written as several). Tracks are numbered two ways: the user's
(original) index, and the index among the encoded tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from midi_rwkv.tokenizer.controls import BarControls, TrackControls

BarIds = tuple[tuple[int, ...], tuple[int, ...]]  # one bar in model ids: (header, body)


@runtime_checkable
class Vocabulary(Protocol):
    """Ids of the atomic tokens the builders write (specials, programs)."""

    def __getitem__(self, token: str, /) -> int:
        """The id of token ``token`` (MidiTok's name, e.g. ``"Track_Start"``); KeyError if the vocabulary lacks it."""
        ...

    def program(self, program: int) -> int:
        """The id of ``Program_{program}`` (-1: drums)."""
        ...


@runtime_checkable
class TokenCodec(Protocol):
    """Model ids of the tokens a sequence is assembled from."""

    @property
    def vocab(self) -> Vocabulary:
        """The vocabulary of atomic tokens."""
        ...

    def atomic(self, tokens: list[str]) -> tuple[int, ...]:
        """Model ids of atomic tokens (specials, programs, controls), one id each, never merged by BPE."""
        ...


@runtime_checkable
class PieceBars(Protocol):
    """A piece's bar grid and track numbering (``EncodedBars.piece``)."""

    @property
    def name(self) -> str:
        """What messages call the piece."""
        ...

    @property
    def num_bars(self) -> int:
        """Real bars in the piece."""
        ...

    @property
    def first_token_bar(self) -> list[int]:
        """Real bar ``i`` covers tokenizer bars ``[first_token_bar[i], first_token_bar[i + 1])``; ``num_bars + 1``
        items."""
        ...

    @property
    def track_ids(self) -> list[int]:
        """The user's (original) index of each encoded track."""
        ...

    def track_index(self, original_track: int) -> int:
        """The encoded index of the user's track ``original_track``; TrackIndexError if it has none."""
        ...

    def token_span(self, start: int, end: int) -> tuple[int, int]:
        """Tokenizer bars covering real bars ``[start, end)``; BarRangeError for an empty span or one outside the
        piece."""
        ...


@runtime_checkable
class TrackFacts(Protocol):
    """What the builders read of one encoded track (``EncodedBars.tracks[t]``)."""

    @property
    def program(self) -> int:
        """Its MidiTok program number, -1 for drums."""
        ...

    @property
    def is_drum(self) -> bool:
        """Whether it is a drum track (drums take note density only, and are never pitch-shifted)."""
        ...


@runtime_checkable
class BarRow(Protocol):
    """One track's bars in model ids (``EncodedBars.bars[t]``)."""

    def __getitem__(self, bar: int, /) -> BarIds:
        """(header, body) model ids of tokenizer bar ``bar``."""
        ...


@runtime_checkable
class EncodedBars(Protocol):
    """A piece's encoded tracks, bar by bar: what the builders assemble sequences from.

    Tracks are addressed by encoded index, bars by tokenizer bar, unless a member says otherwise.
    """

    @property
    def piece(self) -> PieceBars:
        """The bar grid and track numbering."""
        ...

    @property
    def tracks(self) -> Sequence[TrackFacts]:
        """Program and drum flag of each encoded track, in the file's order."""
        ...

    @property
    def bars(self) -> Sequence[BarRow]:
        """Per encoded track, (header, body) model ids of each tokenizer bar (every track has every bar)."""
        ...

    def cost(self, track: int, bar: int) -> int:
        """Model ids of one bar of one track, header and body."""
        ...

    def bar_costs(self, tracks: Sequence[int] | None = None) -> list[int]:
        """Model ids of each tokenizer bar summed over ``tracks`` (default: all), a new list."""
        ...

    def has_notes(self, track: int, start: int, end: int) -> bool:
        """Whether some note of ``track`` starts in tokenizer bars ``[start, end)``."""
        ...

    def bar_controls(self, track: int, span: tuple[int, int]) -> list[BarControls]:
        """The bar controls of each tokenizer bar of ``span`` of ``track``, each bar on its own."""
        ...

    def track_controls(self, track: int, window: tuple[int, int]) -> TrackControls:
        """The track controls of ``track`` over tokenizer bars ``window``."""
        ...
