"""A song being worked on: its versions (undo/redo), the candidates generated for it, and its JSON view."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from symusic import Note, Score, Track

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.infiller import Candidate
from midi_rwkv.tokenizer import InfillTokenizer, Piece
from midi_rwkv.tokenizer.controls import describe_controls


class StudioError(MidiRwkvError):
    """A request the studio refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def new_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Version:
    score: Score
    label: str


@dataclass
class Take:
    """A candidate kept for the page: the notes it wrote (original ticks) and how it was asked for."""

    id: str
    seed: int
    track: int  # for a new track: the index it takes
    bars: tuple[int, int]
    notes: list[tuple[int, int, int, int]]  # time, duration, pitch, velocity
    view: dict
    mode: str = "bars"  # bars | track | new
    program: int = 0
    is_drum: bool = False


@dataclass
class Song:
    id: str
    name: str
    versions: list[Version]
    tokenizer: InfillTokenizer
    position: int = 0  # the current version
    takes: dict[str, Take] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _piece: tuple[int, Piece] | None = None

    @classmethod
    def open(cls, data: bytes, name: str, tokenizer: InfillTokenizer) -> Song:
        """A song from a MIDI file's bytes; one readable error when they are not a usable MIDI file."""
        piece = tokenizer.prepare(data, name)  # raises MidiFileError, EmptyScoreError, UnsupportedMetreError
        song = cls(new_id(), Path(name).stem, [Version(piece.original, "opened")], tokenizer)
        song._piece = (0, piece)
        return song

    @property
    def score(self) -> Score:
        return self.versions[self.position].score

    def piece(self) -> Piece:
        if self._piece is None or self._piece[0] != self.position:
            self._piece = (self.position, self.tokenizer.prepare(self.score, self.name))
        return self._piece[1]

    def keep(self, candidate: Candidate, seed: int, target) -> dict:
        """Store a candidate's notes for what it wrote (the span, the whole track, or the new track); its view."""
        piece = self.piece()
        track, bars = target.track, target.bars
        start, end = piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end
        notes = [(n.time, n.duration, n.pitch, n.velocity) for n in candidate.score.tracks[track].notes
                 if start <= n.time < end]
        tpq = self.score.ticks_per_quarter
        take_id = new_id()
        view = {
            "id": take_id, "seed": seed, "mode": target.mode, "track": track, "bars": list(bars),
            "program": target.program, "is_drum": target.drums,
            "notes": [[t / tpq, d / tpq, p, v] for t, d, p, v in notes],
            "requested": [describe_controls(c) for c in candidate.requested],
            "realised": [describe_controls(c) for c in candidate.realised],
            "control_error": candidate.control_error, "stopped": candidate.generation.stopped,
            "seconds": round(candidate.generation.seconds, 3),
            "form": candidate.form,  # what the song's form contributed, one line (None when not asked)
        }
        self.takes[take_id] = Take(take_id, seed, track, bars, notes, view, target.mode, target.program,
                                   target.drums)
        return view

    def accept(self, take_id: str) -> None:
        """The candidate's notes replace its span in the current version (so it also applies after other edits)."""
        take = self.takes.get(take_id)
        if take is None:
            raise StudioError("no such candidate (it may belong to another song)", 404)
        piece = self.piece()
        score = self.score.copy()
        if take.mode == "new":  # a new track under the others, whatever was accepted since
            track = Track(name="Drums" if take.is_drum else f"Program {take.program}", program=take.program,
                          is_drum=take.is_drum)
            score.tracks.append(track)
            start, end = 0, 0
            label = f"new {'drum track' if take.is_drum else f'track, program {take.program}'} (seed {take.seed})"
        else:
            track = score.tracks[take.track]
            start, end = piece.bars[take.bars[0]].start, piece.bars[take.bars[1] - 1].end
            where = "whole" if take.mode == "track" else f"bars {take.bars[0] + 1}-{take.bars[1]}"
            label = f"track {take.track}, {where} (seed {take.seed})"
        track.notes.filter(lambda n: not start <= n.time < end, inplace=True)
        track.notes.extend([Note(*note) for note in take.notes])
        track.notes.sort(key=lambda n: (n.time, n.pitch), inplace=True)
        del self.versions[self.position + 1 :]  # a new branch: what was undone is gone
        self.versions.append(Version(score, label))
        self.position += 1

    def undo(self) -> None:
        if self.position == 0:
            raise StudioError("nothing to undo", 409)
        self.position -= 1

    def redo(self) -> None:
        if self.position == len(self.versions) - 1:
            raise StudioError("nothing to redo", 409)
        self.position += 1

    def view(self) -> dict:
        score, piece = self.score, self.piece()
        tpq = score.ticks_per_quarter
        bars = [{"start": b.start / tpq, "end": b.end / tpq, "numerator": b.numerator, "denominator": b.denominator}
                for b in piece.bars]
        tracks = []
        for i, track in enumerate(score.tracks):
            notes = sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)
            tracks.append({"index": i, "name": track.name, "program": track.program, "is_drum": track.is_drum,
                           "notes": [[t / tpq, d / tpq, p, v] for t, d, p, v in notes],
                           "editable": i in piece.track_ids})
        qpm = score.tempos[0].qpm if len(score.tempos) else 120.0
        return {
            "id": self.id,
            "name": self.name,
            "qpm": round(float(qpm), 3),
            "version": self.position + 1,
            "can_undo": self.position > 0,
            "can_redo": self.position < len(self.versions) - 1,
            "beats": bars[-1]["end"] if bars else 0.0,
            "bars": bars,
            "tracks": tracks,
            "history": [{"version": i + 1, "label": v.label} for i, v in enumerate(self.versions)],
        }

    def export(self) -> bytes:
        return self.score.dumps_midi()
