"""The monophonic folk collections of music21's corpus as MIDI, one file per tune.

Essen (``essenFolksong``), O'Neill's 1850 (``oneills1850``), Ryan's Mammoth (``ryansMammoth``) and Aird's
Airs (``airdsAirs``) ship inside the music21 package as ABC files of many tunes each. We split a file into
its tunes with music21's own rule (a tune starts at an ``X:`` line; the lines before the first one are a
header every tune gets), parse each tune alone with music21 and build its score with
``musicxml.stream_to_score``, so one bad tune costs only itself, and write ``<collection>/<tune>.mid``.
A tune already written is skipped, so an interrupted conversion resumes.

Tune ids are location-free and do not depend on which file of the collection holds the tune:

* ``essenFolksong/A0001``: the EsAC signature (a tune's first ``N:`` field); the k-th repeat of a
  signature (different tunes filed under one signature, 58 of 8,462) is ``A0001-k``. The four ``test*.abc``
  files are skipped (copies of tunes filed elsewhere, and placeholder signatures such as ``C0000``).
* ``oneills1850/0123``: O'Neill's tune number (``X:``). Some files overlap (alternative transcriptions of
  the same tunes, 171 of 2,009); the first file in name order wins, so no tune is in two splits.
* ``ryansMammoth/AcaciaReel``: the file's name (one tune per file).
* ``airdsAirs/0123``: Aird's tune number (``X:``, numbered through the six books).

A pickup bar is padded to a full bar (music21's ``paddingLeft`` of the first measure becomes a rest
before it), so that bar lines fall where the metre puts them. Repeats are not expanded (as for MusicXML).
"""

from __future__ import annotations

import re
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from symusic import Score
from tqdm import tqdm

from midi_rwkv.errors import MidiFileError, MidiRwkvError
from midi_rwkv.io import atomic_write

TUNE_SECONDS = 120  # a tune that takes longer to parse and convert is reported as failed


@dataclass(frozen=True)
class Collection:
    """One ABC collection: its folder in music21's corpus, and how its tunes are named.

    Attributes:
        folder: folder under music21's corpus (also the first part of every tune id).
        naming: ``"signature"`` (first ``N:`` field), ``"number"`` (``X:``, 4 digits) or ``"file"``
            (the file's name; one tune per file).
        skip: file names (without ``.abc``) not to read.
    """

    folder: str
    naming: str
    skip: tuple[str, ...] = ()


COLLECTIONS = {
    "essenFolksong": Collection("essenFolksong", "signature", skip=("test0", "test1", "testd", "teste")),
    "oneills1850": Collection("oneills1850", "number"),
    "ryansMammoth": Collection("ryansMammoth", "file"),
    "airdsAirs": Collection("airdsAirs", "number"),
}


@dataclass(frozen=True)
class Tune:
    """One tune: its id (``collection/name``) and its ABC text (the file's header, then its own lines)."""

    id: str
    abc: str


def music21_corpus() -> Path:
    """The corpus folder inside the installed music21 package."""
    import music21.corpus

    return Path(music21.corpus.__file__).parent


def split_tunes(text: str) -> tuple[str, list[str]]:
    """An ABC file's header (the lines before the first ``X:`` line) and its tunes (each from its ``X:`` line)."""
    header: list[str] = []
    tunes: list[list[str]] = []
    for line in text.splitlines():
        if line.strip().startswith("X:"):
            tunes.append([])
        (tunes[-1] if tunes else header).append(line)
    return "\n".join(header), ["\n".join(lines) for lines in tunes]


def _field(tune: str, name: str) -> str:
    for line in tune.splitlines():
        if line.startswith(f"{name}:"):
            return line[len(name) + 1 :].strip()
    return ""


def _name(collection: Collection, path: Path, tune: str) -> str:
    if collection.naming == "file":
        return path.stem
    if collection.naming == "signature":
        return _field(tune, "N")
    number = _field(tune, "X")
    return f"{int(number):04d}" if number.isdigit() else number


def tunes(collection: Collection, root: str | Path | None = None) -> list[Tune]:
    """Every tune of a collection, in file-name order, with unique ids (see the module's docstring).

    Args:
        collection: what to read and how to name its tunes.
        root: the folder holding the collection's ``.abc`` files (default: music21's corpus folder for it).
    """
    folder = Path(root) if root is not None else music21_corpus() / collection.folder
    files = sorted(p for p in folder.glob("*.abc") if p.stem not in collection.skip)
    if not files:
        raise MidiRwkvError(f"{folder}: no ABC files")
    out, seen = [], {}
    for path in files:
        header, texts = split_tunes(path.read_text(encoding="utf-8", errors="replace"))
        for text in texts:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", _name(collection, path, text)) or "tune"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                if collection.naming == "number":
                    continue  # another transcription of a tune we already have
                name = f"{name}-{seen[name]}"
            out.append(Tune(f"{collection.folder}/{name}", f"{header}\n{text}\n" if header else f"{text}\n"))
    return out


def tune_to_score(tune: Tune) -> Score:
    """A symusic Score (TPQ 480) of one ABC tune, its pickup bar padded to a full bar; raises MidiFileError."""
    import music21

    from midi_rwkv.data.musicxml import pickup_padding, stream_to_score

    try:
        parsed = music21.converter.parseData(tune.abc, format="abc")
    except Exception as exc:  # music21 raises many unrelated types on bad input
        raise MidiFileError(f"{tune.id}: not readable ABC ({type(exc).__name__}: {exc})") from None
    if not isinstance(parsed, music21.stream.Score):
        raise MidiFileError(f"{tune.id}: not one tune ({type(parsed).__name__})")
    return stream_to_score(parsed, tune.id, shift=pickup_padding(parsed))


def _timeout(signum, frame):
    raise TimeoutError(f"over {TUNE_SECONDS} s")


def _convert(job: tuple[Tune, str]) -> str | None:
    """Convert one tune; returns the error line, or None on success."""
    tune, target = job
    warnings.simplefilter("ignore")  # music21 warns about every irregular bar
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(TUNE_SECONDS)
    try:
        score = tune_to_score(tune)
        atomic_write(Path(target), score.dump_midi)
    except MidiFileError as exc:  # its message names the tune
        return str(exc)
    except Exception as exc:  # one bad tune must not stop the build
        return f"{tune.id}: {exc}"
    finally:
        signal.alarm(0)
    return None


def target_of(tune: Tune, dst: Path) -> Path:
    """Where a tune's MIDI file goes under ``dst``."""
    return dst / f"{tune.id}.mid"


def convert_tunes(todo: list[Tune], dst: str | Path, workers: int) -> list[str]:
    """Each tune not yet under ``dst`` -> ``dst/<id>.mid``, in ``workers`` processes; returns the failures."""
    dst = Path(dst)
    jobs = [(tune, str(target_of(tune, dst))) for tune in todo if not target_of(tune, dst).exists()]
    failures = []
    if not jobs:
        return failures
    with ProcessPoolExecutor(max(workers, 1)) as pool:
        results = pool.map(_convert, jobs, chunksize=8)
        for error in tqdm(results, total=len(jobs), desc=f"convert {dst.name}", unit="tune"):
            if error:
                failures.append(error)
    return failures
