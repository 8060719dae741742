"""Where pieces come from: a folder of MIDI files, POP909 (with its annotated metre), or GigaMIDI.

A corpus is a list of piece ids and ``load(i) -> Score``. Corpora hold only paths or a memory-mapped
``datasets`` table, so they pickle cheaply into DataLoader workers.
"""

from __future__ import annotations

import re
import zipfile
from html import unescape
from pathlib import Path

import numpy as np
from symusic import Score, TimeSignature

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer.score import load_score

MIDI_SUFFIXES = (".mid", ".midi", ".MID", ".MIDI")


def midi_files(*roots: str | Path) -> list[Path]:
    """Every MIDI file under the given files or folders (recursive), sorted."""
    out: list[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out.extend(p for p in root.rglob("*") if p.suffix in MIDI_SUFFIXES and p.is_file())
        else:
            raise MidiRwkvError(f"{root}: no such file or folder")
    return sorted(set(out))




class Corpus:
    """Base class: ``ids`` (stable, unique piece names) and ``load``.

    ``name`` identifies the corpus on this machine (for caches); ``label`` is a short, location-free
    prefix for piece ids, so that splits do not depend on where the data lives.
    """

    name = "corpus"
    label = "corpus"

    def __init__(self, ids: list[str]):
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Score:
        raise NotImplementedError

    def song(self, index: int) -> str:
        """The id that decides the piece's split: its own, or its song's when it is one version of a song (so no
        version of a validation or test song is ever trained on)."""
        return self.ids[index]


class FolderCorpus(Corpus):
    """Every MIDI file under a folder (recursive); ids are paths relative to the folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.files = midi_files(self.root)
        self.name = f"folder:{self.root.resolve()}"
        self.label = "folder"
        super().__init__([str(p.relative_to(self.root)) for p in self.files])

    def load(self, index: int) -> Score:
        return load_score(self.files[index])


def read_pop909_index(path: Path) -> dict[str, tuple[int, int]]:
    """song id -> (beats per measure, quavers per beat) from POP909's index.xlsx (read without openpyxl)."""
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    table = {}
    for _, body in re.findall(r'<row r="(\d+)"[^>]*>(.*?)</row>', xml)[1:]:
        cells = {
            col: unescape(t or v)
            for col, t, v in re.findall(r'<c r="([A-Z]+)\d+"[^>]*>(?:<is><t>(.*?)</t></is>|<v>(.*?)</v>)?</c>', body)
        }
        table[cells["A"].zfill(3)] = (int(float(cells["E"])), int(float(cells["F"])))
    return table


def pop909_time_signatures(
    score: Score, beat_file: Path, beats_per_measure: int, quavers_per_beat: int
) -> list[TimeSignature]:
    """POP909's real metre: n/4 (or 3n/8 for compound beats), bar lines on the annotated downbeats.

    ``beat_midi.txt`` lists beat times in seconds; its second column marks downbeats. A first
    downbeat after the start becomes a pickup bar, written as a shorter bar at tick 0.
    """
    beats = np.loadtxt(beat_file, ndmin=2)
    downbeats = beats[beats[:, 1] == 1, 0]
    num, den = (3 * beats_per_measure, 8) if quavers_per_beat == 3 else (beats_per_measure, 4)
    tpq = score.ticks_per_quarter
    beat_ticks = tpq * 4 * num // (den * beats_per_measure)
    signatures = []
    if len(downbeats):
        first_tick = _second_to_tick(score, float(downbeats[0]))  # through the file's tempo map
        pickup_beats = round(first_tick / beat_ticks) % beats_per_measure
        if pickup_beats:
            pickup_units = pickup_beats * (num // beats_per_measure)
            signatures.append(TimeSignature(0, pickup_units, den))
            signatures.append(TimeSignature(pickup_beats * beat_ticks, num, den))
    return signatures or [TimeSignature(0, num, den)]


def _second_to_tick(score: Score, seconds: float) -> int:
    tempos = sorted((t.time, t.mspq) for t in score.tempos) or [(0, 500000)]
    tpq = score.ticks_per_quarter
    elapsed = 0.0
    for (time, mspq), nxt in zip(tempos, tempos[1:] + [(None, None)]):
        span = (nxt[0] - time) * mspq / 1e6 / tpq if nxt[0] is not None else float("inf")
        if seconds <= elapsed + span:
            return round(time + (seconds - elapsed) * 1e6 * tpq / mspq)
        elapsed += span
    return 0


class Pop909Corpus(Corpus):
    """POP909 (``NNN/NNN.mid``) with the metre from ``index.xlsx`` and ``beat_midi.txt``.

    The files' own time signatures are wrong for most songs (617 of 909 declare only 1/4). With
    ``versions``, the alternate arrangements ``NNN/versions/NNN-vK.mid`` (same timing, tempo and metre as
    the song, ids ``NNN/vK``) come too, each in its song's split.
    """

    def __init__(self, root: str | Path, versions: bool = False):
        self.root = Path(root)
        index = self.root / "index.xlsx"
        if not index.is_file():
            raise MidiRwkvError(f"{self.root}: not a POP909 folder (no index.xlsx)")
        self.metre = read_pop909_index(index)
        self.name = f"pop909{'+versions' if versions else ''}:{self.root.resolve()}"
        self.label = "pop909"
        songs = sorted(song for song in self.metre if (self.root / song / f"{song}.mid").is_file())
        ids = []
        for song in songs:
            ids.append(song)
            if versions:
                found = sorted((self.root / song / "versions").glob(f"{song}-v*.mid"), key=_version_number)
                ids += [f"{song}/v{_version_number(p)}" for p in found]
        super().__init__(ids)

    def song(self, index: int) -> str:
        return self.ids[index].split("/")[0]

    def path(self, index: int) -> Path:
        song, _, version = self.ids[index].partition("/")
        if version:
            return self.root / song / "versions" / f"{song}-{version}.mid"
        return self.root / song / f"{song}.mid"

    def load(self, index: int) -> Score:
        song = self.song(index)
        score = load_score(self.path(index))
        score.time_signatures.clear()
        score.time_signatures.extend(
            pop909_time_signatures(score, self.root / song / "beat_midi.txt", *self.metre[song])
        )
        return score


def _version_number(path: Path) -> int:
    return int(path.stem.rsplit("-v", 1)[1])


class GigaMidiCorpus(Corpus):
    """GigaMIDI (or any table with a ``music`` column of MIDI bytes) through Hugging Face ``datasets``.

    ``source`` is a Hub name (e.g. ``Metacreation/GigaMIDI``, gated: log in first, and pass
    ``subset="all-instruments-with-drums"``), a local parquet/arrow file, or a ``save_to_disk`` folder.
    """

    def __init__(self, source: str, split: str = "train", subset: str | None = None, id_column: str = "md5"):
        try:
            import datasets
        except ImportError:
            raise MidiRwkvError("GigaMIDI needs the 'datasets' package: pip install datasets") from None
        path = Path(source)
        if path.is_dir():  # a save_to_disk folder
            table = datasets.load_from_disk(str(path))
        elif path.suffix in (".parquet", ".arrow"):
            table = datasets.load_dataset(path.suffix[1:], data_files={split: str(path)}, split=split)
        else:
            table = datasets.load_dataset(source, subset, split=split)
        if isinstance(table, datasets.DatasetDict):
            table = table[split]
        if "music" not in table.column_names:
            raise MidiRwkvError(f"{source}: no 'music' column (found {table.column_names})")
        self.table = table
        self.name = f"gigamidi:{source}:{subset or ''}:{split}"
        self.label = "gigamidi"
        column = table[id_column] if id_column in table.column_names else [str(i) for i in range(len(table))]
        super().__init__([str(x) for x in column])

    def load(self, index: int) -> Score:
        return load_score(self.table[index]["music"])


class SubsetCorpus(Corpus):
    """Some pieces of another corpus (same name prefix and label, so piece ids and splits agree)."""

    def __init__(self, corpus: Corpus, indices: list[int], tag: str):
        self.corpus = corpus
        self.indices = list(indices)
        self.name = f"{corpus.name}[{tag}]"
        self.label = corpus.label
        super().__init__([corpus.ids[i] for i in self.indices])

    def load(self, index: int) -> Score:
        return self.corpus.load(self.indices[index])

    def song(self, index: int) -> str:
        return self.corpus.song(self.indices[index])


class MergedCorpus(Corpus):
    """Several corpora as one; piece ids and songs get their corpus's label (``pop909/001``), so splits are
    location-free."""

    def __init__(self, corpora: list[Corpus]):
        self.corpora = corpora
        self.name = "+".join(c.name for c in corpora)
        self.offsets = []
        ids = []
        for c in corpora:
            self.offsets.append(len(ids))
            ids += [f"{c.label}/{i}" for i in c.ids]
        super().__init__(ids)

    def _locate(self, index: int) -> tuple[Corpus, int]:
        for corpus, offset in reversed(list(zip(self.corpora, self.offsets))):
            if index >= offset:
                return corpus, index - offset
        raise IndexError(index)

    def load(self, index: int) -> Score:
        corpus, local = self._locate(index)
        return corpus.load(local)

    def song(self, index: int) -> str:
        corpus, local = self._locate(index)
        return f"{corpus.label}/{corpus.song(local)}"


def open_corpus(spec: str) -> Corpus:
    """``folder:PATH``, ``pop909:PATH``, ``pop909+versions:PATH`` (with the alternate arrangements),
    ``gigamidi:NAME_OR_FILE[:SUBSET]``, or a bare folder path."""
    kind, _, rest = spec.partition(":")
    if kind in ("pop909", "pop909+versions"):
        return Pop909Corpus(rest, versions=kind == "pop909+versions")
    if kind == "gigamidi":
        source, _, subset = rest.partition("::")
        return GigaMidiCorpus(source, subset=subset or None)
    if kind == "folder":
        return FolderCorpus(rest)
    return FolderCorpus(spec)
