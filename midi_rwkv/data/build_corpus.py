"""Build the default model's pretraining corpus from ``../shared/data`` and music21's folk collections.

Converts the MusicXML sources (OpenScore Lieder and String Quartets) and the ABC folk collections shipped
inside music21 (``data.folk``: Essen, O'Neill's, Ryan's, Aird's; one MIDI per tune) to MIDI once (a file
already converted is kept, so an interrupted build resumes), then writes ``manifest.json`` with one row per
piece of every source: source, licence, path, tracks, notes and split. The split is the one training
uses (a hash of the location-free piece id), so POP909's test songs are never trained on.

    midi-rwkv build-corpus --shared ../shared/data --out runs/corpus
    midi-rwkv build-corpus --sources folk_oneills --manifest manifest-folk.json   # one source, its own manifest
    midi-rwkv build-corpus --sources mix_drums --manifest manifest-mix.json      # the synthetic drum mix (not default)
"""

from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from midi_rwkv.data.corpora import FolderCorpus, Pop909Corpus
from midi_rwkv.data.drum_mix import build_mix_drums, song_sources
from midi_rwkv.data.folk import COLLECTIONS, convert_tunes, tunes
from midi_rwkv.data.prefilter import SPLIT_RATIOS, split_of
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write

# name -> (folder, licence, kind). kind "midi": MIDI files under the shared data; "musicxml": MusicXML there,
# converted; "abc": an ABC collection in music21's corpus (data.folk.COLLECTIONS), converted one MIDI per tune.
# The folk licences are music21's records: corpus/license.txt says its corpus is distributed "with the permission
# of the encoders" and points to per-directory licences; only essenFolksong has one.
ESSEN_LICENCE = (
    "legal status unclear (music21 corpus/essenFolksong/license.txt): EsAC data, permission from E. Dahlig-Turek "
    "for non-commercial distribution and use in music21; ABC by S. Schlien, distributed by his permission"
)
TUNES_LICENCE = "public domain tunes ({book}); ABC by {who}, no licence stated; music21 corpus, encoders' permission"
SOURCES = {
    "music21_poly": ("music21_poly", "public domain works; music21 encodings for research use", "midi"),
    "mutopia": ("mutopia", "public domain / CC BY / CC BY-SA (per piece)", "midi"),
    "nottingham": ("nottingham", "GPL-3.0", "midi"),
    "groove": ("groove", "CC BY 4.0", "midi"),
    "lieder": ("sources/lieder/scores", "CC0", "musicxml"),
    "quartets": ("sources/quartets/scores", "CC0", "musicxml"),
    "pop909": ("pop909", "MIT", "midi"),
    # the 1,989 alternate arrangements of the same songs, each in its song's split (listed after the songs)
    "pop909_versions": ("pop909", "MIT", "midi"),
    "folk_essen": ("essenFolksong", ESSEN_LICENCE, "abc"),
    "folk_oneills": (
        "oneills1850",
        TUNES_LICENCE.format(book="O'Neill's Music of Ireland, 1903", who="volunteer transcribers named per tune"),
        "abc",
    ),
    "folk_ryans": (
        "ryansMammoth",
        TUNES_LICENCE.format(book="Ryan's Mammoth Collection, 1883", who="volunteer transcribers named per tune"),
        "abc",
    ),
    "folk_airds": (
        "airdsAirs",
        TUNES_LICENCE.format(book="Aird's Airs, Glasgow, from 1778", who="Jack Campin, 2003-2009"),
        "abc",
    ),
    # synthetic (data.drum_mix): Groove beats laid under POP909's and Nottingham's training songs; off by default
    "mix_drums": ("groove", "its song's licence (MIT or GPL-3.0) + CC BY 4.0 (Groove MIDI)", "mix"),
}
SYNTHETIC = ("mix_drums",)  # built only when asked for by name
DEFAULT_SOURCES = [name for name in SOURCES if name not in SYNTHETIC]
SPLIT_SEED = 0  # the training default (data.prefilter.prefilter)


def _convert(job: tuple[str, str]) -> str | None:
    """Convert one MusicXML file; returns the error line, or None on success."""
    from midi_rwkv.data.musicxml import musicxml_to_score

    source, target = job
    warnings.simplefilter("ignore")  # music21 warns about every overfull measure
    try:
        score = musicxml_to_score(source)
        atomic_write(Path(target), score.dump_midi)
    except Exception as exc:  # one bad score must not stop the build
        return f"{source}: {exc}"
    return None


def convert_folder(src: Path, dst: Path, workers: int) -> list[str]:
    """MusicXML under ``src`` -> MIDI under ``dst`` (same relative paths); returns the failures."""
    jobs = []
    for path in sorted(p for p in src.rglob("*") if p.suffix in (".mxl", ".musicxml", ".xml")):
        target = (dst / path.relative_to(src)).with_suffix(".mid")
        if not target.exists():
            jobs.append((str(path), str(target)))
    failures = []
    with ProcessPoolExecutor(workers) as pool:
        for error in tqdm(
            pool.map(_convert, jobs, chunksize=1), total=len(jobs), desc=f"convert {dst.name}", unit="score"
        ):
            if error:
                failures.append(error)
    return failures


def _rows(name: str, corpus, licence: str, only=None) -> list[dict]:
    rows = []
    for index, piece in enumerate(tqdm(corpus.ids, desc=f"manifest {name}", unit="piece")):
        if only is not None and not only(piece):
            continue
        try:
            score = corpus.load(index)
            tracks, notes = len(score.tracks), score.note_num()
        except MidiRwkvError:
            tracks = notes = 0
        rows.append(
            {
                "source": name,
                "licence": licence,
                "id": piece,
                "tracks": tracks,
                "notes": notes,
                "split": split_of(f"{corpus.label}/{corpus.song(index)}", SPLIT_SEED, SPLIT_RATIOS),
            }
        )
    return rows


def build(shared: Path, out: Path, sources: list[str], workers: int, convert: bool = True) -> dict:
    """Convert what needs converting and return the manifest; ``data`` lists the training specs.

    ``convert=False`` takes the MusicXML and ABC sources as far as they were converted before. A synthetic source
    (``mix_drums``) is made again each time (cheaply; an unchanged file is left alone), and its rows say
    ``synthetic: true``.
    """
    rows, failures, data, not_made = [], {}, [], {}
    for name in sources:
        folder, licence, kind = SOURCES[name]
        if kind == "mix":  # synthetic: rows labelled ``synthetic``, training songs only (data.drum_mix)
            mixed, skipped, specs = build_mix_drums(song_sources(shared), shared / folder, out, split_seed=SPLIT_SEED,
                                                    progress=True)
            rows += mixed
            data += specs
            failures[name], not_made[name] = [], dict(sorted(skipped.items()))
            continue
        if kind == "abc":  # a collection inside the music21 package: nothing to find under ``shared``
            failures[name] = convert_tunes(tunes(COLLECTIONS[folder]), out / name, workers) if convert else []
            src = out / name
        else:
            src = shared / folder
            if not src.is_dir():
                raise MidiRwkvError(f"{src}: missing (see ../shared/data/README.md)")
            if kind == "musicxml":
                failures[name] = convert_folder(src, out / name, workers) if convert else []
                src = out / name
        if kind != "midi" and not src.is_dir():
            raise MidiRwkvError(f"{src}: nothing converted yet (run without --no-convert)")
        if name == "pop909_versions":  # one training spec reads the songs and their versions
            rows += _rows(name, Pop909Corpus(src, versions=True), licence, only=lambda piece: "/" in piece)
            data = [d for d in data if d != f"pop909:{src}"] + [f"pop909+versions:{src}"]
            continue
        corpus = Pop909Corpus(src) if name == "pop909" else FolderCorpus(src)
        data.append(f"{'pop909' if name == 'pop909' else 'folder'}:{src}")
        rows += _rows(name, corpus, licence)
    summary = {}
    for row in rows:
        entry = summary.setdefault(row["source"], {"pieces": 0, "notes": 0, "train": 0, "validation": 0, "test": 0})
        entry["pieces"] += 1
        entry["notes"] += row["notes"]
        entry[row["split"]] += 1
    manifest = {"data": data, "summary": summary, "failures": failures, "pieces": rows}
    return manifest | ({"not_made": not_made} if not_made else {})  # synthetic songs not made, by reason
