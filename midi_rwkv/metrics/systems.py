"""What produces an infill in an evaluation: a model setting, or one of the non-model references.

A model system is a checkpoint (optionally with a tuned state or a LoRA), sampling settings, and
whether the bars get their controls (those of the original bars, as in the paper) or none (free).
Every report also has references on the same prompts:
  * ``original``: the original bars themselves, the ceiling of every similarity metric;
  * ``copy``: the N bars just before the span copied into it (the N after it when the piece
    starts too early), a heuristic that any useful model should beat (whole tracks: ``other-track``);
  * ``structure-copy``: the N bars of the target track from the window elsewhere in the song whose other tracks
    best match the span's (:meth:`midi_rwkv.structure.SongStructure.sources`): songs repeat, so this is the
    baseline to beat;
  * ``silence``: nothing at all in the span (or the whole track), the floor. A metric on which silence
    scores well rewards empty bars: groove similarity counts the onsets that a generation and the
    original do not share, so the fewer notes the better wherever the onsets are hard to guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.form import FollowSettings
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.sampler import SamplerConfig, default_sampler
from midi_rwkv.io import file_sha256
from midi_rwkv.settings import settings_from_mapping
from midi_rwkv.structure import SongStructure
from midi_rwkv.structure.copying import copy_bars
from midi_rwkv.tokenizer import Piece
from midi_rwkv.tokenizer.sequences import LAYOUTS

REFERENCES = ("original", "copy", "structure-copy", "silence")  # bar infill
TRACK_REFERENCES = ("original", "other-track", "silence")  # whole-track infill
FILES = ("model", "tokenizer", "state", "lora")
# How the structure setting follows the form (inference.form.FollowSettings), keys for measuring it:
FOLLOW_KEYS = {"structure_weight": "weight", "structure_floor": "floor", "source_timing": "source_timing",
               "structure_durations": "durations_below", "structure_duration_slack": "duration_slack",
               "structure_duration_keep": "duration_keep", "structure_tracks": "tracks"}
EVALUATION_SETS = ("seed",)  # the evaluation's own --seed decides each prompt's sampling


@dataclass(frozen=True)
class System:
    """A model setting (the files it loads, and the same :class:`InfillOptions` and sampling that ``midi-rwkv
    infill`` takes), or a reference row (a name alone). It scores one candidate per prompt: with ``rank`` none, the
    first one a request writes (so it generates one); otherwise the best of its ``n``."""

    name: str
    model: str | None = None  # None for the references
    tokenizer: str | None = None
    state: str | None = None
    lora: str | None = None
    layout: str | None = None  # the sequence layout of the prompts; None: the model's own (tokenizer.sequences.LAYOUTS)
    options: InfillOptions = field(default_factory=InfillOptions)
    sampler: SamplerConfig | None = None  # None: each fill kind's default (inference.sampler.TRACK_SAMPLER for tracks)
    follow: FollowSettings = field(default_factory=FollowSettings)

    @property
    def is_reference(self) -> bool:
        return self.model is None

    @property
    def candidates(self) -> int:
        """Candidates generated per prompt: the first one alone when nothing ranks them."""
        return 1 if self.options.rank == "none" else self.options.n

    def to_dict(self) -> dict:
        files = {key: getattr(self, key) for key in FILES}
        follow = {key: getattr(self.follow, name) for key, name in FOLLOW_KEYS.items()}
        options = {k: v for k, v in asdict(self.options).items() if k not in EVALUATION_SETS}
        return {"name": self.name, **files, "layout": self.layout, **options, **follow,
                "sampler": vars(self.sampler) if self.sampler else None}

    def identity(self, mode: str) -> dict:
        """What decides this system's generations in an evaluation of ``mode`` (bars | track): its settings, the
        sampling it gets (a default resolved), and the sha256 of each file it loads. Stored with every generation,
        so that a re-run can tell generations made by something else under the same name."""
        if self.is_reference:  # made by no model: its name says it all (a model setting's default is not its own)
            return {"name": self.name}
        out = self.to_dict()
        out["sampler"] = vars(self.sampler or default_sampler(mode))
        return out | {"sha256": {key: file_sha256(out[key])[:12] for key in FILES if out[key]}}


_SAMPLER_KEYS = tuple(f.name for f in fields(SamplerConfig))
_OPTION_KEYS = tuple(f.name for f in fields(InfillOptions) if f.name not in EVALUATION_SETS)
KEYS = (*FILES, "layout", *_OPTION_KEYS, *FOLLOW_KEYS, *_SAMPLER_KEYS)


def parse_system(text: str, default_model: str, defaults: dict[str, str] | None = None) -> System:
    """``NAME[:key=value,...]``: the keys of :data:`KEYS` (the files it loads, ``layout``, every setting of
    :class:`InfillOptions` as ``midi-rwkv infill`` takes it, how it follows the form, and the sampling);
    ``structure`` also takes 1 (follow) and 0 (off). ``defaults``: values for keys the text leaves out (the
    evaluation's ``--context``)."""
    name, _, rest = text.partition(":")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise MidiRwkvError(f"system '{text}': the name must be letters, digits, - or _")
    if name in REFERENCES or name in TRACK_REFERENCES:
        raise MidiRwkvError(f"system name '{name}' is reserved for a reference row")
    pairs: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise MidiRwkvError(f"system '{text}': '{item}' is not key=value")
        if key not in KEYS:
            raise MidiRwkvError(f"system '{text}': unknown key '{key}' (keys: {' '.join(KEYS)})")
        pairs[key] = value
    pairs = (defaults or {}) | pairs
    if "structure" in pairs:
        pairs["structure"] = {"1": "follow", "0": "off"}.get(pairs["structure"], pairs["structure"])
    if pairs.get("layout") not in (None, *LAYOUTS):
        raise MidiRwkvError(f"system '{text}': layout must be one of {', '.join(LAYOUTS)}")
    try:
        sampler = {k: v for k, v in pairs.items() if k in _SAMPLER_KEYS}
        return System(
            name,
            **{key: pairs.get(key) for key in FILES} | {"model": pairs.get("model", default_model)},
            layout=pairs.get("layout"),
            options=settings_from_mapping(InfillOptions, {k: v for k, v in pairs.items() if k in _OPTION_KEYS}),
            sampler=settings_from_mapping(SamplerConfig, sampler) if sampler else None,
            follow=settings_from_mapping(FollowSettings, {FOLLOW_KEYS[k]: v for k, v in pairs.items()
                                                          if k in FOLLOW_KEYS}),
        )
    except (ValueError, MidiRwkvError) as exc:
        raise MidiRwkvError(f"system '{text}': {exc}") from None


def reference_score(name: str, piece: Piece, track: int, bars: tuple[int, int]) -> Score:
    """The ``original``, ``copy``, ``silence`` or ``other-track`` infill of real bars [start, end) of ``track``
    (original ticks)."""
    score = piece.original.copy()
    if name == "original":
        return score
    if name == "other-track":
        return other_track_score(piece, track)
    start, end = bars
    n = end - start
    notes = score.tracks[track].notes
    span_start, span_end = piece.bars[start].start, piece.bars[end - 1].end
    if name == "silence":
        kept = [note.copy() for note in notes if not span_start <= note.time < span_end]
        notes.clear()
        notes.extend(kept)
        return score
    if name == "structure-copy":
        source = structure_source(piece, track, bars)
    else:
        source = start - n if start - n >= 0 else end
        if source + n > piece.num_bars:
            raise MidiRwkvError(f"{piece.name}: no {n} bars next to bars {start + 1}-{end} to copy")
    copy_bars(score, piece.original, track, piece.bars, [(start + i, source + i) for i in range(n)], span_end)
    return score


def structure_source(piece: Piece, track: int, bars: tuple[int, int]) -> int:
    """The first real bar of the window whose other tracks best match the span's (the ``structure-copy`` source)."""
    sources = SongStructure.of_piece(piece).sources(track, bars, k=1)
    if not sources:
        raise MidiRwkvError(f"{piece.name}: no window elsewhere in the song with other tracks to match bars "
                            f"{bars[0] + 1}-{bars[1]} against")
    return sources[0].start


def other_track_score(piece: Piece, track: int) -> Score:
    """The whole-track reference: of the piece's other pitched tracks, the one whose content best matches the
    original track (content preservation), copied in its place and moved by whole octaves to the original's
    register (its median pitch). Drums copy the closest other drum track, unmoved. An oracle-assisted heuristic,
    so a strong row: a model that writes a whole track should approach it."""
    from midi_rwkv.metrics.music import content_preservation
    from midi_rwkv.metrics.region import Region

    original = piece.original
    target = original.tracks[track]
    region = Region(track, tuple(piece.bars), original.ticks_per_quarter)
    best, best_cp = None, -1.0
    for i, other in enumerate(original.tracks):
        if i == track or other.is_drum != target.is_drum or not other.notes:
            continue
        candidate = original.copy()
        notes = [n.copy() for n in other.notes]
        if not target.is_drum and target.notes:
            shift = 12 * round((np.median([n.pitch for n in target.notes]) - np.median([n.pitch for n in notes])) / 12)
            for n in notes:
                n.pitch = int(min(127, max(0, n.pitch + shift)))
        candidate.tracks[track].notes.clear()
        candidate.tracks[track].notes.extend(notes)
        cp = content_preservation(candidate, original, region)
        if cp > best_cp:
            best, best_cp = candidate, cp
    if best is None:
        raise MidiRwkvError(f"{piece.name}: no other {'drum' if target.is_drum else 'pitched'} track to copy")
    return best
