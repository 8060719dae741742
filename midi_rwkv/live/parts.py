"""Who plays what in a live take: the player's track and the parts the engine accompanies with, and what each part's
next bar is asked for (its controls, note limit and register).

A part is an existing track of the song (its number) or a new one (:class:`~midi_rwkv.inference.requests.NewTrack`:
a General MIDI program, or drums). Unless the player sets them (:class:`~midi_rwkv.live.options.PartControls`), a
part's next bar asks for what the part played lately: the median note count of its last bars with notes, and the
polyphony and note values of the latest; a part with nothing to go by asks for a plain part
(:func:`~midi_rwkv.tokenizer.controls.typical_track_controls` without others).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from miditok.constants import MIDI_INSTRUMENTS
from symusic import Score

from midi_rwkv.errors import MidiRwkvError, TrackIndexError
from midi_rwkv.inference.infiller import (
    BAR_LIMIT_FACTOR,
    MIN_BAR_LIMIT,
    REGISTER_MARGIN,
    density_limits,
    program_register,
)
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live.encoding import EncodedBar
from midi_rwkv.live.options import PartControls
from midi_rwkv.tokenizer.controls import DENSITY_MAX, DURATIONS, BarControls, typical_track_controls

RECENT = 4  # bars with notes whose median note count a part keeps to
LOOK_BACK = 16  # bars searched for them


@dataclass(frozen=True)
class LivePart:
    """One track of the take that the engine writes (or, as the player, reads)."""

    track: int  # its number in the take
    program: int  # General MIDI program; -1 for drums
    name: str
    first_bar: int  # the first bar of the take it plays in
    register: tuple[int, int] | None  # the pitches it keeps to; None: drums, or no register known
    base: BarControls  # what its bars ask for unless the player says otherwise (:func:`base_controls`)

    @property
    def is_drum(self) -> bool:
        return self.program == -1

    def as_dict(self) -> dict:
        return {"track": self.track, "name": self.name, "program": max(self.program, 0), "is_drum": self.is_drum,
                "register": list(self.register) if self.register else None}


def track_range(score: Score, track: int) -> tuple[int, int] | None:
    """The pitches a pitched track of ``score`` plays, widened by one semitone each side; None without notes."""
    pitches = score.tracks[track].notes.numpy()["pitch"]
    if score.tracks[track].is_drum or not len(pitches):
        return None
    return int(pitches.min()) - REGISTER_MARGIN, int(pitches.max()) + REGISTER_MARGIN


def resolve_part(score: Score, spec: int | NewTrack, first_bar: int, programs: set[int], role: str,
                 history=lambda track: []) -> LivePart:
    """A part from an existing track number or a :class:`NewTrack`; a new one is added to ``score`` (in place).
    ``history(track)``: an existing track's last bars in the song, oldest first."""
    if isinstance(spec, NewTrack):
        program = -1 if spec.is_drum else spec.program
        if program not in programs:
            raise MidiRwkvError(f"{role}: program {spec.program} has no token in the model's vocabulary")
        name = spec.name or ("Drums" if spec.is_drum else MIDI_INSTRUMENTS[spec.program]["name"])
        score.tracks.append(_empty_track(name, spec.program, spec.is_drum))
        track = len(score.tracks) - 1
        register = None if spec.is_drum else program_register(spec.program)
        return LivePart(track, program, name, first_bar, register, base_controls([], spec.is_drum))
    if not isinstance(spec, int) or not 0 <= spec < len(score.tracks):
        raise TrackIndexError(f"{role}: track {spec} does not exist (the song has {len(score.tracks)} tracks)")
    source = score.tracks[spec]
    program = -1 if source.is_drum else source.program
    if program not in programs:
        raise MidiRwkvError(f"{role}: track {spec}'s program {source.program} has no token in the vocabulary")
    register = track_range(score, spec) or (None if source.is_drum else program_register(source.program))
    base = base_controls(history(spec), source.is_drum)
    return LivePart(spec, program, source.name or f"Track {spec}", 0, register, base)


def _empty_track(name: str, program: int, is_drum: bool):
    from symusic import Track

    return Track(name=name, program=0 if is_drum else program, is_drum=is_drum)


def base_controls(history: list[EncodedBar], is_drum: bool) -> BarControls:
    """What a part asks for unless the player says otherwise: what its track played last in the song (the median note
    count of its last :data:`RECENT` bars with notes, the polyphony and note values of the latest), else a plain
    part's. Fixed for the take, so a part never drifts towards silence by following its own quieter bars."""
    played = [bar for bar in history[-LOOK_BACK:] if bar.count][-RECENT:]
    if played:
        density = int(round(float(np.median([bar.count for bar in played]))))
        latest = next(c for c in played[-1].controls if c.density)
        polyphony, durations = latest.polyphony, latest.durations
    else:
        plain = typical_track_controls([], is_drum)
        density, polyphony, durations = round(sum(plain.density) / 2), plain.polyphony, plain.durations
    if is_drum:
        return BarControls(min(density, DENSITY_MAX))
    return BarControls(min(density, DENSITY_MAX), polyphony or (1, 1), durations or (False,) * len(DURATIONS))


def requested_controls(part: LivePart, user: PartControls, token_bars: int) -> list[BarControls]:
    """The controls of each tokenizer bar of the part's next bar: its :attr:`LivePart.base`, changed by the player's
    settings (a density split evenly over the tokenizer bars of a real bar)."""
    rest = BarControls(0) if part.is_drum else BarControls(0, None, (False,) * len(DURATIONS))
    density = 0 if user.mute else (user.density if user.density is not None else part.base.density)
    if density == 0:
        return [rest] * token_bars
    base = replace(part.base, density=min(density, DENSITY_MAX))
    if user.polyphony is not None and not part.is_drum:
        base = replace(base, polyphony=user.polyphony)
    each = max(1, round(base.density / token_bars)) if token_bars > 1 else base.density
    return [replace(base, density=each) for _ in range(token_bars)]


def note_limits(controls: list[BarControls], base: BarControls, strict: bool) -> list[int]:
    """Notes each tokenizer bar may hold: its density control with strict density, else (and for "18+") the guard
    against runaway loops, :data:`BAR_LIMIT_FACTOR` x the part's own density (at least :data:`MIN_BAR_LIMIT`)."""
    guard = max(MIN_BAR_LIMIT, BAR_LIMIT_FACTOR * base.density)
    return density_limits(controls, guard) if strict else [guard] * len(controls)


def part_register(part: LivePart, user: PartControls, keep: bool) -> tuple[int, int] | None:
    """The pitches the part's next bar may use: the player's setting, else its own register (with ``keep``)."""
    if part.is_drum:
        return None
    if user.register is not None:
        return user.register
    return part.register if keep else None
