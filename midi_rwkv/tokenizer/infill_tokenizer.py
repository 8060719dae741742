"""One object for everything between MIDI and model ids: what training and inference both use."""

from __future__ import annotations

from pathlib import Path

from miditok import MMM
from symusic import Score, Track

from midi_rwkv.errors import EmptyScoreError, TrackIndexError
from midi_rwkv.tokenizer.codec import Codec
from midi_rwkv.tokenizer.controls import DURATIONS, BarControls, TrackControls, bar_controls, track_controls
from midi_rwkv.tokenizer.mmm import load_tokenizer, paper_tokenizer, save_tokenizer
from midi_rwkv.tokenizer.sequences import (
    EncodedPiece,
    InfillSequence,
    build_bar_infill,
    build_track_generation,
    build_track_infill,
    encode_piece,
    resolve_bar_controls,
)
from midi_rwkv.tokenizer.merge import MergeReport, append_track, merge_section
from midi_rwkv.tokenizer.requested import ControlRequest, apply_bar_request
from midi_rwkv.tokenizer.score import Piece, load_score, prepare_piece


class InfillTokenizer:
    """The paper's MMM tokenizer (optionally BPE-trained) with the canonical infill encoding.

    Example:
        >>> tok = InfillTokenizer()                       # 663 base tokens, no BPE
        >>> piece = tok.prepare("song.mid")
        >>> seq = tok.bar_infill(piece, track=1, bars=(8, 12), context_bars=16)
        >>> seq.prompt, seq.target
    """

    def __init__(self, miditok: MMM | None = None):
        self.miditok = miditok if miditok is not None else paper_tokenizer()
        self.codec = Codec(self.miditok)

    @classmethod
    def load(cls, path: str | Path) -> "InfillTokenizer":
        return cls(load_tokenizer(path))

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        return save_tokenizer(self.miditok, path, metadata)

    @property
    def vocab_size(self) -> int:
        return self.codec.vocab_size

    @property
    def is_trained(self) -> bool:
        return self.miditok.is_trained

    def prepare(self, source: str | Path | bytes | Score, name: str | None = None) -> Piece:
        """Load (unless given a Score) and prepare a piece; see :func:`prepare_piece`."""
        if isinstance(source, Score):
            return prepare_piece(source, self.miditok, name or "<score>")
        return prepare_piece(
            load_score(source, name), self.miditok, name or ("<bytes>" if isinstance(source, bytes) else str(source))
        )

    def encode(self, piece: Piece) -> EncodedPiece:
        return encode_piece(piece, self.codec)

    def requested_controls(self, piece: Piece, track: int, bars: tuple[int, int], request: ControlRequest | None = None,
                           enc: EncodedPiece | None = None) -> list[BarControls]:
        """The controls of real bars ``bars`` = [start, end) of ``track``, one per tokenizer bar (a long real bar may
        be written as several): the original bars', overridden by ``request``. ``enc``: the piece's encoding, if
        made already."""
        enc = enc or self.encode(piece)
        t = piece.track_index(track)
        base = resolve_bar_controls(enc, t, piece.token_span(*bars), None)
        return apply_bar_request(piece, track, base, bars, request or ControlRequest(), enc.tracks[t].is_drum)

    def bar_infill(self, piece: Piece | EncodedPiece, track: int, bars: tuple[int, int], **options) -> InfillSequence:
        """See :func:`midi_rwkv.tokenizer.sequences.build_bar_infill` for ``options``."""
        enc = piece if isinstance(piece, EncodedPiece) else self.encode(piece)
        return build_bar_infill(enc, self.codec, track, bars, **options)

    def track_infill(self, piece: Piece | EncodedPiece, track: int, **options) -> InfillSequence:
        """See :func:`midi_rwkv.tokenizer.sequences.build_track_infill` for ``options``."""
        enc = piece if isinstance(piece, EncodedPiece) else self.encode(piece)
        return build_track_infill(enc, self.codec, track, **options)

    def track_generation(
        self, piece: Piece | EncodedPiece, program: int, controls: TrackControls, **options
    ) -> InfillSequence:
        """See :func:`midi_rwkv.tokenizer.sequences.build_track_generation` for ``options``."""
        enc = piece if isinstance(piece, EncodedPiece) else self.encode(piece)
        return build_track_generation(enc, self.codec, program, controls, **options)

    def merge(self, piece: Piece, seq: InfillSequence, generated: list[int], new_track: Track | None = None
              ) -> tuple[Score, MergeReport]:
        """Put generated ids (what follows ``seq.prompt``) back into the piece's original score.

        A track-generation sequence replaces its track's notes in its window, or, with ``new_track`` (its
        name, program and drum flag), adds that track.
        """
        vocab = self.codec.vocab
        if seq.kind == "bar":
            section_start = seq.prompt.index(vocab["FillBar_Start"]) + 1
        else:
            section_start = len(seq.prompt) - len(seq.section[0].header)  # the first bar's header closes the prompt
        section = seq.prompt[section_start:] + list(generated)
        if new_track is not None:
            return append_track(piece, self.codec, new_track, seq.bars, section)
        return merge_section(piece, self.codec, seq.track, seq.bars, section)

    def track_controls_of(self, source: Score | Piece, name: str, track: int) -> TrackControls | None:
        """The track controls that ``track`` of ``source`` has over the whole piece; None if it has no notes.

        A prepared :class:`Piece` is used as it is (a score is prepared first).
        """
        try:
            piece = source if isinstance(source, Piece) else self.prepare(source, name)
            t = piece.track_index(track)
        except (TrackIndexError, EmptyScoreError):
            return None
        return track_controls(piece.score.tracks[t], piece.token_bars, piece.score.ticks_per_quarter)

    def realised_controls(
        self, score: Score, name: str, track: int, bars: tuple[int, int], count: int, is_drum: bool
    ) -> list[BarControls]:
        """The bar controls that real bars ``bars`` = [start, end) of ``track`` have in ``score``, measured as
        training measures them (on the quantised score, per tokenizer bar). A track that lost every note reads as
        ``count`` empty bars."""
        empty = BarControls(0) if is_drum else BarControls(0, None, (False,) * len(DURATIONS))
        try:
            piece = self.prepare(score, name)
            t = piece.track_index(track)
        except (TrackIndexError, EmptyScoreError):
            return [empty] * count
        span = piece.token_span(*bars)
        realised = bar_controls(
            piece.score.tracks[t], piece.token_bars[span[0] : span[1]], piece.score.ticks_per_quarter
        )
        return [BarControls(c.density) for c in realised] if is_drum else realised

    def token_strings(self, ids: list[int]) -> list[str]:
        """Readable form of model ids: each id as its base tokens joined by '+'."""
        names = self.codec.vocab.tokens
        return ["+".join(names[b] for b in self.codec.pieces[i]) or "\u2581" for i in ids]
