"""MusicXML -> MIDI: parse with music21, build the score with symusic.

music21's own MIDI writer is very slow on large works, so we read notes, tempi and metres off the
parsed stream and write them with symusic (``stream_to_score``, shared with the ABC folk tunes of
``data.folk``). One MIDI track per part; ties are merged; unpitched (percussion) parts are skipped;
grace notes (zero length) are dropped.
"""

from __future__ import annotations

from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from midi_rwkv.errors import MidiFileError

TPQ = 480


def _ticks(quarters) -> int:
    return round(float(quarters) * TPQ)


def musicxml_to_score(path: str | Path) -> Score:
    """A symusic Score (TPQ 480) of a MusicXML/.mxl file; raises MidiFileError when it cannot be read."""
    import music21

    try:
        parsed = music21.converter.parse(str(path))
    except Exception as exc:  # music21 raises many unrelated types on bad input
        raise MidiFileError(f"{path}: not readable MusicXML ({type(exc).__name__}: {exc})") from None
    return stream_to_score(parsed, str(path), shift=pickup_padding(parsed))


def pickup_padding(parsed) -> float:
    """Quarter notes missing from a pickup (anacrusis) first bar: shifting the music by this much puts every bar
    line where the metre says (MIDI has no pickup bars: without it, every bar line falls a pickup early)."""
    import music21

    if not parsed.parts:
        return 0.0
    first = parsed.parts[0].getElementsByClass(music21.stream.Measure).first()
    return max(float(first.paddingLeft), 0.0) if first is not None else 0.0


def stream_to_score(parsed, where: str, shift: float = 0.0) -> Score:
    """A symusic Score (TPQ 480) of a parsed music21 Score: tempi and metres of its first part, a track per part.

    Args:
        parsed: a ``music21.stream.Score`` (or any stream with ``parts``).
        where: names the piece in error messages.
        shift: quarter notes by which every note, and every tempo or metre change after the start, moves
            later (0: none); :func:`pickup_padding` pads a pickup bar to a full bar with it.

    Raises:
        MidiFileError: when no part has a pitched note.
    """
    import music21

    score = Score(TPQ)
    flat = parsed.parts[0].flatten() if parsed.parts else parsed.flatten()

    def at(element) -> int:
        offset = element.getOffsetBySite(flat)
        return _ticks(offset + shift if offset > 0 else offset)

    for mark in flat.getElementsByClass(music21.tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm:
            score.tempos.append(Tempo(at(mark), qpm=float(qpm)))
    if not len(score.tempos) or score.tempos[0].time > 0:
        score.tempos.insert(0, Tempo(0, qpm=100.0))
    for ts in flat.getElementsByClass(music21.meter.TimeSignature):
        time = at(ts)
        if len(score.time_signatures) and score.time_signatures[-1].time == time:
            score.time_signatures.pop()
        score.time_signatures.append(TimeSignature(time, ts.numerator, ts.denominator))

    for index, part in enumerate(parsed.parts):
        instrument = part.getInstrument(returnDefault=True)
        if isinstance(instrument, music21.instrument.UnpitchedPercussion):
            continue
        program = instrument.midiProgram if instrument.midiProgram is not None else 0
        track = Track(part.partName or f"part {index + 1}", program=int(program) % 128)
        for element in part.stripTies().flatten().notes:
            duration = _ticks(element.quarterLength)
            if duration <= 0:
                continue
            start = _ticks(element.offset + shift)
            velocity = element.volume.velocity or 80
            for pitch in element.pitches:
                track.notes.append(Note(start, duration, int(pitch.midi), int(velocity)))
        if len(track.notes):
            track.notes.sort(key=lambda n: (n.time, n.pitch))
            score.tracks.append(track)
    if not score.tracks:
        raise MidiFileError(f"{where}: no pitched notes")
    return score
