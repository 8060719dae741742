"""Synthetic band arrangements: tempo-matched Groove beats laid under POP909 songs and Nottingham tunes.

The corpus has drums only alone (Groove's drum-only performances), so a drum infill inside an arrangement is never
trained on. This source makes such arrangements: for each song, a few Groove *beat* performances (never fills) in
the song's metre, the ones nearest its tempo, are time-stretched bar by bar onto the song's own bars (POP909's
annotated bars, a tune's file bars) and added as a drum track (``is_drum``, program 0).

* **Bar-aligned.** Groove bar ``k`` spans ``[k B, (k + 1) B)`` of its file (``B``: its bar length). Each of its hits
  maps linearly onto the target bar, so a hit in Groove bar ``k`` always lands inside the song bar it was laid on.
  A song in 2/4 (most of POP909 by its annotations) takes each 4/4 Groove bar over two of its bars, half on each.
* **Tempo-matched.** The candidates are the ``nearest`` Groove beats by tempo (quarter notes per minute, log
  ratio) within ``max_tempo_ratio``; a song draws ``beats_per_song`` of them.
* **Sections.** The drummed bars (from the song's first bar with a note to its last, in its main metre) are cut
  into sections of ``section_bars`` Groove bars. Each section loops ``loop_bars`` consecutive bars of one beat; the
  next section keeps the beat or switches to another of the song's (half and half).
* **Splits.** A piece takes its song's split, and only training songs are made (:func:`build_mix_drums`); its
  Groove beats come from Groove's training split too, so no validation or test material of either source reaches
  training. The bench builds test songs' arrangements (with test-split beats) on the fly.
* **Deterministic**: every choice comes from a generator seeded by ``seed`` and the song's id.

Groove's Roland kit has three pitches outside General MIDI; they are written as their GM equivalents (Groove's own
mapping): 22 (hi-hat closed, edge) -> 42, 26 (hi-hat open, edge) -> 46, 58 (tom 3, rim) -> 43. The tokenizer's
drum range (27-87) would otherwise drop the edge hi-hats.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from symusic import Note, Score, Track

from midi_rwkv.data.corpora import Corpus, FolderCorpus, Pop909Corpus
from midi_rwkv.data.splits import SPLIT_RATIOS, split_of
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write
from midi_rwkv.tokenizer.metre import Bar, real_bars

GROOVE_TO_GM = {22: 42, 26: 46, 58: 43}
GROOVE_LICENCE = "CC BY 4.0 (Groove MIDI)"
# song metre -> (Groove metre, song bars per Groove bar)
METRES = {(4, 4): ((4, 4), 1), (2, 2): ((4, 4), 1), (2, 4): ((4, 4), 2), (3, 4): ((3, 4), 1), (6, 8): ((6, 8), 1)}
DEFAULT_QPM = 120.0  # MIDI's tempo where a file gives none (Nottingham's tunes)


class SkipSong(MidiRwkvError):
    """No arrangement can be made of this song; ``reason`` is the short kind the build counts."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class GrooveBeat:
    """One Groove beat performance, from ``info.csv``; ``path`` is relative to the Groove folder (its corpus id)."""

    path: str
    bpm: float
    metre: tuple[int, int]
    style: str
    split: str  # the corpus's split of this file (a hash of ``folder/<path>``), not Groove's own column


@dataclass(frozen=True)
class MixSettings:
    """How beats are chosen and laid (see the module).

    Attributes:
        seed: with the song's id, seeds every choice (default 0).
        beats_per_song: Groove beats a song draws (default 3).
        nearest: the candidates, the beats nearest the song's tempo (default 8).
        max_tempo_ratio: a beat further from the song's tempo than this factor is never used (default 2).
        section_bars: Groove bars per section (default 8: 8 bars of 4/4, 16 bars of 2/4).
        loop_bars: consecutive Groove bars a section loops (default 4).
        min_hits: a Groove bar with fewer hits is not used (default 4).
    """

    seed: int = 0
    beats_per_song: int = 3
    nearest: int = 8
    max_tempo_ratio: float = 2.0
    section_bars: int = 8
    loop_bars: int = 4
    min_hits: int = 4

    def __post_init__(self):
        if min(self.beats_per_song, self.nearest, self.section_bars, self.loop_bars) < 1 or self.max_tempo_ratio < 1:
            raise MidiRwkvError(f"invalid drum-mix settings: {self}")


def groove_beats(groove_root: str | Path, split_seed: int = 0) -> list[GrooveBeat]:
    """Every beat (not fill) of Groove's ``info.csv`` in a metre some song can take, with its corpus split."""
    root = Path(groove_root)
    if not (root / "info.csv").is_file():
        raise MidiRwkvError(f"{root}: not a Groove folder (no info.csv)")
    grooves = {g for g, _ in METRES.values()}
    beats = []
    with (root / "info.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            num, _, den = row["time_signature"].partition("-")
            metre = (int(num), int(den))
            if row["beat_type"] != "beat" or metre not in grooves or not (root / row["midi_filename"]).is_file():
                continue
            path = row["midi_filename"]
            beats.append(GrooveBeat(path, float(row["bpm"]), metre, row["style"],
                                    split_of(f"folder/{path}", split_seed, SPLIT_RATIOS)))
    return beats


def groove_bars(score: Score, min_hits: int) -> tuple[int, dict[int, np.ndarray]]:
    """A Groove file's bar length in ticks and its usable bars: bar index -> its notes (a structured array of
    ``time, duration, pitch, velocity``, times from the bar's start). The bar holding the last hit is left out (a
    performance may stop inside it), and so is any bar with fewer than ``min_hits`` hits."""
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    num, den = (ts.numerator, ts.denominator) if ts else (4, 4)
    length = num * 4 * score.ticks_per_quarter // den
    if not score.note_num():
        return length, {}
    notes = np.sort(np.concatenate([_structured(t) for t in score.tracks if len(t.notes)]), order="time")
    index = notes["time"] // length
    bars = {}
    for k in range(int(notes["time"].max()) // length):
        body = notes[index == k].copy()
        if len(body) >= min_hits:
            body["time"] -= k * length
            bars[k] = body
    return length, bars


NOTE_DTYPE = [("time", np.int64), ("duration", np.int64), ("pitch", np.int64), ("velocity", np.int64)]


def _structured(track: Track) -> np.ndarray:
    arrays = track.notes.numpy()
    out = np.zeros(len(arrays["time"]), NOTE_DTYPE)
    for key in out.dtype.names:
        out[key] = arrays[key]
    return out


def stretch(notes: np.ndarray, length: int, part: int, parts: int, bar: Bar) -> np.ndarray:
    """The hits of part ``part`` of ``parts`` of a Groove bar (times from its start, ``length`` ticks long) mapped
    linearly onto ``bar``: ``t -> start + (t - part length/parts) (end - start) / (length/parts)``, floored, so every
    hit of the part lands in ``[bar.start, bar.end)``."""
    times = notes["time"] * parts - part * length  # in units of 1/parts tick: [0, length) inside the part
    inside = (times >= 0) & (times < length)
    out = notes[inside].copy()
    span = bar.end - bar.start
    out["time"] = bar.start + times[inside] * span // length
    out["duration"] = np.maximum(1, np.rint(out["duration"] * parts * span / length)).astype(np.int64)
    out["pitch"] = [GROOVE_TO_GM.get(int(p), int(p)) for p in out["pitch"]]
    return out


def song_qpm(score: Score, at: int) -> float:
    """Quarter notes per minute in force at tick ``at`` (MIDI's 120 without a tempo)."""
    tempos = sorted((t.time, t.qpm) for t in score.tempos if t.time <= at)
    return float(tempos[-1][1]) if tempos else DEFAULT_QPM


def drum_bars(score: Score) -> tuple[list[Bar], tuple[int, int], list[list[int]]]:
    """The song's real bars, its main metre (that of most bars with notes), and the runs of consecutive bars in that
    metre between its first and last bar with a note (bar indices): the bars drums are laid on."""
    onsets = np.concatenate([t.notes.numpy()["time"] for t in score.tracks if len(t.notes)])
    bars = real_bars(score, int(onsets.max()))
    starts = np.array([b.start for b in bars])
    with_notes = sorted(set(np.searchsorted(starts, onsets, side="right") - 1))
    first, last = with_notes[0], with_notes[-1]
    metre = Counter((bars[i].numerator, bars[i].denominator) for i in with_notes).most_common(1)[0][0]
    runs: list[list[int]] = []
    for i in range(first, last + 1):
        if (bars[i].numerator, bars[i].denominator) != metre:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return bars, metre, runs


def _rng(seed: int, song: str) -> random.Random:
    return random.Random(int(hashlib.sha1(f"{seed}:{song}".encode()).hexdigest()[:16], 16))


class DrumMixer:
    """Lays Groove beats under songs (see the module); ``mix`` makes one arrangement."""

    def __init__(self, groove_root: str | Path, settings: MixSettings | None = None, split_seed: int = 0,
                 load: Callable[[Path], Score] | None = None):
        self.root = Path(groove_root)
        self.settings = settings or MixSettings()
        self.beats = groove_beats(self.root, split_seed)
        self._load = load or (lambda path: Score(str(path)))
        self._bars: dict[str, tuple[int, dict[int, np.ndarray]]] = {}

    def bars_of(self, beat: GrooveBeat) -> tuple[int, dict[int, np.ndarray]]:
        if beat.path not in self._bars:
            self._bars[beat.path] = groove_bars(self._load(self.root / beat.path), self.settings.min_hits)
        return self._bars[beat.path]

    def candidates(self, metre: tuple[int, int], qpm: float, split: str) -> list[GrooveBeat]:
        """Beats in ``metre`` and ``split`` within the tempo ratio, nearest ``qpm`` first (at most ``nearest``)."""
        s = self.settings
        pool = [b for b in self.beats if b.metre == metre and b.split == split
                and abs(math.log(b.bpm / qpm)) <= math.log(s.max_tempo_ratio)]
        pool.sort(key=lambda b: (abs(math.log(b.bpm / qpm)), b.path))
        usable = (b for b in pool if self.bars_of(b)[1])  # a file is read only when it is one of the nearest
        return [b for _, b in zip(range(s.nearest), usable)]

    def _lay(self, bars: list[Bar], runs: list[list[int]], parts: int, chosen: list[GrooveBeat],
             rng: random.Random) -> tuple[np.ndarray, list[dict]]:
        """The drum hits over ``runs`` of ``bars`` (``parts`` song bars per Groove bar), and the sections played."""
        s = self.settings
        hits, sections, slot, current, first_slot = [], [], 0, 0, 0
        for run in runs:
            for j, i in enumerate(run):
                g = slot + j // parts  # this bar's Groove bar, counted over the song
                if not sections or g % s.section_bars == 0 and j % parts == 0:
                    if sections and len(chosen) > 1 and rng.random() < 0.5:
                        current = rng.choice([c for c in range(len(chosen)) if c != current])
                    usable = sorted(self.bars_of(chosen[current])[1])
                    start = rng.randrange(len(usable))
                    loop = [usable[(start + k) % len(usable)] for k in range(min(s.loop_bars, len(usable)))]
                    sections.append({"first_bar": i, "groove": chosen[current].path, "groove_bars": loop})
                    first_slot = g
                loop = sections[-1]["groove_bars"]
                length, body = self.bars_of(chosen[current])
                hits.append(stretch(body[loop[(g - first_slot) % len(loop)]], length, j % parts, parts, bars[i]))
            slot += -(-len(run) // parts)  # a run that ends inside a Groove bar: the next starts a new one
        return (np.sort(np.concatenate(hits), order="time") if hits else np.zeros(0, NOTE_DTYPE)), sections

    def mix(self, score: Score, song: str, split: str) -> tuple[Score, dict]:
        """``score`` with a drum track added, and the record of what made it.

        ``song`` is the song's location-free id (its split's key, e.g. ``pop909/001``); ``split`` the Groove split
        the beats come from (the song's own). Raises :class:`SkipSong` when no arrangement can be made.
        """
        s = self.settings
        if score.note_num() == 0:
            raise SkipSong(f"{song}: no notes", "no notes")
        bars, metre, runs = drum_bars(score)
        if metre not in METRES:
            raise SkipSong(f"{song}: metre {metre[0]}/{metre[1]} (Groove has no beat for it)",
                           f"metre {metre[0]}/{metre[1]}")
        groove_metre, parts = METRES[metre]
        qpm = float(np.median([song_qpm(score, bars[i].start) for run in runs for i in run]))
        pool = self.candidates(groove_metre, qpm, split)
        if not pool:
            raise SkipSong(f"{song}: no {groove_metre[0]}/{groove_metre[1]} Groove beat in the {split} split "
                           f"within {s.max_tempo_ratio}x of {qpm:.0f} qpm", "no Groove beat near its tempo")
        rng = _rng(s.seed, song)
        chosen = rng.sample(pool, min(s.beats_per_song, len(pool)))
        hits, sections = self._lay(bars, runs, parts, chosen, rng)
        out = score.copy()
        drums = Track("Drums", 0, True)
        drums.notes = Note.from_numpy(hits["time"].astype(np.int32), hits["duration"].astype(np.int32),
                                      hits["pitch"].astype(np.int8), hits["velocity"].astype(np.int8), "tick")
        out.tracks.append(drums)
        record = {
            "song": song, "split": split, "metre": f"{metre[0]}/{metre[1]}", "qpm": round(qpm, 2),
            "groove": [b.path for b in chosen], "groove_bpm": [b.bpm for b in chosen],
            "groove_metre": f"{groove_metre[0]}/{groove_metre[1]}", "song_bars_per_groove_bar": parts,
            "sections": sections, "drum_track": len(out.tracks) - 1, "settings": asdict(s),
        }
        return out, record


def song_key(corpus: Corpus, index: int) -> str:
    """The location-free id that decides a song's split (as the manifest and the compiled corpus hash it)."""
    return f"{corpus.label}/{corpus.song(index)}"


def training_split(corpus: Corpus, index: int, seed: int = 0) -> bool:
    """The split rule: an arrangement is made only of a training song (it then takes the song's split, train);
    a validation or test song makes none, so the real validation and test splits stay real and unseen."""
    return split_of(song_key(corpus, index), seed, SPLIT_RATIOS) == "train"


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, but leave an identical file alone (its time stamp keeps a compiled shard up to date)."""
    if path.is_file() and path.read_bytes() == data:
        return
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


MIX_FOLDER = "mix_drums"


def output_folder(out: Path, corpus: Corpus) -> Path:
    """The folder of one song source's arrangements under the corpus folder ``out``, laid out so that it reads as a
    corpus of its own whose split keys are the songs' own: ``mix_drums/pop909_drums`` (a POP909 folder: spec
    ``pop909:``, keys ``pop909/NNN``) or ``mix_drums/<folder>_drums`` (spec ``folder:``, keys ``folder/<id>``)."""
    name = "pop909" if isinstance(corpus, Pop909Corpus) else Path(getattr(corpus, "root", corpus.label)).name
    return out / MIX_FOLDER / f"{name}_drums"


def output_path(out: Path, corpus: Corpus, index: int) -> Path:
    """Where a song's arrangement goes (see :func:`output_folder`): ``NNN/NNN.mid`` or the tune's own id."""
    if isinstance(corpus, Pop909Corpus):
        song = corpus.song(index)
        return output_folder(out, corpus) / song / f"{song}.mid"
    return output_folder(out, corpus) / corpus.ids[index]


def output_spec(out: Path, corpus: Corpus) -> str:
    """The training spec of one song source's arrangements."""
    return f"{'pop909' if isinstance(corpus, Pop909Corpus) else 'folder'}:{output_folder(out, corpus)}"


def build_mix_drums(songs: list[tuple[Corpus, str]], groove_root: str | Path, out: str | Path,
                    settings: MixSettings | None = None, split_seed: int = 0, progress: bool = False
                    ) -> tuple[list[dict], Counter, list[str]]:
    """Make the arrangements of every training song of ``songs`` ((corpus, licence) pairs) under ``out/mix_drums``.

    Each piece gets a MIDI file (:func:`output_path`) and a JSON record beside it (song, Groove files, sections).
    POP909's folder gets its ``index.xlsx`` and each song's ``beat_midi.txt``, so it opens as a POP909 corpus.
    Returns the manifest rows (``synthetic: true``, ``path`` relative to ``out``), the count of songs not made by
    reason, and the training specs of the folders written.
    """
    from tqdm import tqdm

    out = Path(out)
    mixer = DrumMixer(groove_root, settings, split_seed)
    rows, skipped, specs = [], Counter(), []
    for corpus, licence in songs:
        made = 0
        for index in tqdm(range(len(corpus)), desc=f"mix drums {corpus.label}", unit="song", disable=not progress):
            if not training_split(corpus, index, split_seed):
                skipped["validation or test song (never made)"] += 1
                continue
            try:
                mixed, record = mixer.mix(corpus.load(index), song_key(corpus, index), "train")
            except SkipSong as err:
                skipped[err.reason] += 1
                continue
            except MidiRwkvError as err:  # an unreadable or empty song
                skipped[type(err).__name__] += 1
                continue
            path = output_path(out, corpus, index)
            if isinstance(corpus, Pop909Corpus):
                _copy_annotations(corpus, index, path.parent)
            _write_if_changed(path, bytes(mixed.dumps_midi()))
            record["song_licence"] = licence
            _write_if_changed(path.with_suffix(".json"), (json.dumps(record, indent=1) + "\n").encode())
            rows.append({
                "source": MIX_FOLDER, "licence": f"{licence} + {GROOVE_LICENCE}", "id": record["song"],
                "path": str(path.relative_to(out)), "song": record["song"], "groove": record["groove"],
                "tracks": len(mixed.tracks), "notes": mixed.note_num(), "split": "train", "synthetic": True,
            })
            made += 1
        if made:
            specs.append(output_spec(out, corpus))
    return rows, skipped, specs


def _copy_annotations(corpus: Pop909Corpus, index: int, folder: Path) -> None:
    song = corpus.song(index)
    for source, target in ((corpus.root / "index.xlsx", folder.parent / "index.xlsx"),
                           (corpus.root / song / "beat_midi.txt", folder / "beat_midi.txt")):
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def song_sources(shared: str | Path) -> list[tuple[Corpus, str]]:
    """POP909 and Nottingham under the shared data folder, with their licences."""
    shared = Path(shared)
    return [(Pop909Corpus(shared / "pop909"), "MIT (POP909)"), (FolderCorpus(shared / "nottingham"),
                                                               "GPL-3.0 (Nottingham)")]
