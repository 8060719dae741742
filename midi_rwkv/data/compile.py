"""Compile a corpus: tokenize every piece once into a shard that ``midi_rwkv.data.compiled`` reads.

One shard per source (a corpus spec such as ``pop909+versions:PATH``), in ``OUT/<name>``. A shard is
rebuilt only when its source's pieces (ids, sizes, times) or the tokenizer change; it is written to a
temporary folder and renamed, so an interrupted compile leaves the old shard (or nothing).

Each piece goes through training's prefilter (more than 100 notes, at least 8 bars), then
``InfillTokenizer.prepare`` and ``encode`` once; the other pitch shifts are made by moving the base
``Pitch_*`` ids of each bar body and BPE-encoding them (MidiTok's encoding of a shifted score, as a test
checks, without running MidiTok again).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from midi_rwkv.data.compiled import ARRAYS, FORMAT, NAMED_TOKENS, NO_SHIFT, file_hash
from midi_rwkv.data.corpora import Corpus, open_corpus
from midi_rwkv.data.dataset import unlearned_ids
from midi_rwkv.data.splits import SPLIT_RATIOS, split_of
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.examples import program_range, track_shifts
from midi_rwkv.tokenizer.metre import real_bars

MAX_SHIFT = 6  # the example builder's pitch_offset


def representable(score, tokenizer: InfillTokenizer):
    """A copy of ``score`` without the notes the vocabulary cannot hold (tracks stay, maybe empty)."""
    config = tokenizer.miditok.config
    out = score.copy()
    for track in out.tracks:
        low, high = config.drums_pitch_range if track.is_drum else config.pitch_range
        if len(track.notes):
            pitches = track.notes.numpy()["pitch"]
            if pitches.min() < low or pitches.max() > high:
                track.notes.filter(lambda n: low <= n.pitch <= high, inplace=True)
    return out


def _shifted_bodies(tokenizer: InfillTokenizer, base_bodies: list[tuple[int, ...]], shift: int):
    """BPE ids of bar bodies (base ids) with every ``Pitch_p`` moved to ``Pitch_{p + shift}``."""
    codec = tokenizer.codec
    moved = _pitch_maps(tokenizer)[shift]
    return codec.encode_words([tuple(moved.get(i, i) for i in body) for body in base_bodies])


@functools.cache
def _pitch_maps(tokenizer: InfillTokenizer) -> dict[int, dict[int, int]]:
    """Per shift, base id of ``Pitch_p`` -> base id of ``Pitch_{p + shift}`` (where that pitch exists)."""
    pitches = {int(t[6:]): i for t, i in tokenizer.codec.vocab.ids.items() if t.startswith("Pitch_")}
    return {
        s: {i: pitches[p + s] for p, i in pitches.items() if p + s in pitches} for s in range(-MAX_SHIFT, MAX_SHIFT + 1)
    }


def compile_piece(score, tokenizer: InfillTokenizer, name: str, min_bars: int = 8, min_notes: int = 100,
                  max_shift: int = MAX_SHIFT) -> dict:
    """Everything a shard stores about one piece (bodies at every pitch shift up to ``max_shift``), or
    ``{"skip": reason}``."""
    if score.note_num() <= min_notes:
        return {"skip": f"too few notes: {score.note_num()} <= {min_notes}"}
    clean = representable(score, tokenizer)
    try:
        piece = tokenizer.prepare(clean, name)
        if piece.num_bars < min_bars:
            return {"skip": f"too few bars: {piece.num_bars} < {min_bars}"}
        enc = tokenizer.encode(piece)
    except MidiRwkvError as err:
        return {"skip": f"{type(err).__name__}: {err}"}
    config = tokenizer.miditok.config
    grace = math.ceil(clean.ticks_per_quarter / 24)  # as prepare_piece: quantisation may move a last onset later
    n_token_bars = piece.first_token_bar[-1]
    tracks = []
    for index, track in enumerate(clean.tracks):
        if not len(track.notes):
            continue
        arrays = track.notes.numpy()
        program = -1 if track.is_drum else track.program
        bars_alone = len(real_bars(clean, int(arrays["time"].max()) + grace)) if program in config.programs else 0
        low = high = NO_SHIFT
        if not track.is_drum:
            low, high = track_shifts(arrays["pitch"], program_range(track.program, config.pitch_range))
        row = {"index": index, "program": program, "drum": track.is_drum, "bars": bars_alone, "low": low,
               "high": high, "encoded": index in piece.track_ids}
        if row["encoded"]:
            t = piece.track_ids.index(index)
            stats = enc.statistics(t)
            notes = [enc.tracks[t].notes_in(b, b + 1, tokenizer.codec.vocab) for b in range(n_token_bars)]
            if notes != stats.count.tolist():
                raise RuntimeError(f"{name}: track {index}: note counts of tokens and of notes disagree")
            shifts = {0: [body for _, body in enc.bars[t]]}
            if not track.is_drum:
                base = [body for _, body in enc.tracks[t].bars]
                for s in range(max(low, -max_shift), min(high, max_shift) + 1):
                    if s:
                        shifts[s] = _shifted_bodies(tokenizer, base, s)
            row |= {"statistics": stats, "shifts": shifts}
        tracks.append(row)
    headers = [header for header, _ in enc.bars[0]]
    return {"first_token_bar": piece.first_token_bar, "headers": headers, "tracks": tracks, "tokens": enc.length()}


class _Writer:
    """Accumulates compiled pieces into the shard's flat arrays."""

    def __init__(self, max_shift: int = MAX_SHIFT):
        self.max_shift = max_shift
        self.words: list[np.ndarray] = []
        self.bar_lengths: list[int] = []
        self.row_bar: list[int] = []
        self.row_word: list[int] = []
        self.n_words = 0
        self.cols: dict[str, list] = {name: [] for name in ARRAYS if name.startswith(("piece_", "track_"))}
        self.first_bar: list[int] = []
        self.shift_row: list[int] = []
        self.stats: dict[str, list[np.ndarray]] = {k: [] for k in ("count", "min", "max", "dur", "pairs", "repeats")}
        self.stat_rows = 0

    def _row(self, bars: list[tuple[int, ...]]) -> int:
        self.row_bar.append(len(self.bar_lengths))
        self.row_word.append(self.n_words)
        self.bar_lengths += [len(b) for b in bars]
        self.words.append(np.fromiter((i for b in bars for i in b), np.uint16))
        self.n_words += len(self.words[-1])
        return len(self.row_bar) - 1

    def add(self, compiled: dict) -> None:
        c = self.cols
        c["piece_first"].append(len(self.first_bar))
        self.first_bar += compiled["first_token_bar"]
        c["piece_bars"].append(len(compiled["first_token_bar"]) - 1)
        c["piece_token_bars"].append(len(compiled["headers"]))
        c["piece_track"].append(len(c["track_index"]))
        c["piece_tracks"].append(len(compiled["tracks"]))
        c["piece_header"].append(self._row(compiled["headers"]))
        for track in compiled["tracks"]:
            for key, col in (("index", "track_index"), ("program", "track_program"), ("drum", "track_drum"),
                             ("encoded", "track_encoded"), ("bars", "track_bars"), ("low", "track_low"),
                             ("high", "track_high")):
                c[col].append(track[key])
            c["track_stat"].append(self.stat_rows)
            c["track_shift"].append(len(self.shift_row))
            rows = [-1] * (2 * self.max_shift + 1)
            if track["encoded"]:
                for s, bodies in track["shifts"].items():
                    rows[s + self.max_shift] = self._row(bodies)
                st = track["statistics"]
                self.stats["count"].append(st.count)
                self.stats["min"].append(st.poly_min)
                self.stats["max"].append(st.poly_max)
                self.stats["dur"].append((st.durations * (1 << np.arange(st.durations.shape[1]))).sum(1))
                self.stats["pairs"].append(st.pairs)
                self.stats["repeats"].append(st.repeats)
                self.stat_rows += len(st.count)
            self.shift_row += rows

    def arrays(self) -> dict[str, np.ndarray]:
        dtypes = {"track_program": np.int16, "track_drum": bool, "track_encoded": bool, "track_low": np.int16,
                  "track_high": np.int16}
        out = {name: np.asarray(values, dtypes.get(name, np.int64)) for name, values in self.cols.items()}
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        out |= {
            "words": cat(self.words, np.uint16),
            "bar_len": np.asarray(self.bar_lengths, np.uint16),
            "row_bar": np.asarray(self.row_bar, np.int64),
            "row_word": np.asarray(self.row_word, np.int64),
            "first_bar": np.asarray(self.first_bar, np.int32),
            "shift_row": np.asarray(self.shift_row, np.int64),
            "stat_count": cat(self.stats["count"], np.uint16),
            "stat_poly_min": cat(self.stats["min"], np.int8),
            "stat_poly_max": cat(self.stats["max"], np.int8),
            "stat_durations": cat(self.stats["dur"], np.uint8),
            "stat_pairs": cat(self.stats["pairs"], np.uint16),
            "stat_repeats": (np.concatenate(self.stats["repeats"]) if self.stats["repeats"] else np.zeros((0, 3))
                             ).astype(np.int16),
        }
        return out


def source_signature(corpus: Corpus) -> str:
    """A hash of the source's piece ids and, where they are files, their sizes and modification times."""
    h = hashlib.sha256(corpus.name.encode())
    for i, piece in enumerate(corpus.ids):
        h.update(piece.encode())
        path = getattr(corpus, "path", None) or getattr(corpus, "files", None)
        target = path(i) if callable(path) else (path[i] if path else None)
        if target is not None and Path(target).is_file():
            st = Path(target).stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def shard_name(spec: str) -> str:
    """A folder name for a source spec, e.g. ``pop909+versions-pop909``."""
    kind, _, rest = spec.partition(":")
    tail = Path(rest.split("::")[0]).name if rest else kind
    return f"{kind}-{tail}".replace("/", "_")


_WORKER: dict = {}


def _init(tokenizer_path: str, spec: str, limits: tuple[int, int, int]) -> None:
    import warnings

    warnings.simplefilter("ignore")
    _WORKER.update(tok=InfillTokenizer.load(tokenizer_path), corpus=open_corpus(spec), limits=limits)


def _compile_one(index: int) -> dict:
    corpus, tok = _WORKER["corpus"], _WORKER["tok"]
    try:
        score = corpus.load(index)
    except MidiRwkvError as err:
        return {"skip": f"{type(err).__name__}: {err}"}
    return compile_piece(score, tok, corpus.ids[index], *_WORKER["limits"])


def compile_source(spec: str, tokenizer_path: str | Path, out: str | Path, workers: int = 1, seed: int = 0,
                   progress: bool = True, force: bool = False, min_bars: int = 8, min_notes: int = 100,
                   max_shift: int = MAX_SHIFT) -> Path:
    """Compile one source into ``out/<shard_name(spec)>``; returns the shard folder (kept when up to date).

    ``seed``, ``min_bars`` and ``min_notes`` are training's split seed and prefilter (``data.prefilter``).
    ``max_shift`` 0 keeps no pitch shifts: a shard 13 times smaller (e.g. to carry to another machine), for
    training with ``pitch_offset`` 0.
    """
    if not 0 <= max_shift <= MAX_SHIFT:
        raise MidiRwkvError(f"max_shift must be 0..{MAX_SHIFT}")
    corpus = open_corpus(spec)
    tokenizer = InfillTokenizer.load(tokenizer_path)
    folder = Path(out) / shard_name(spec)
    key = {"format": FORMAT, "source": source_signature(corpus), "tokenizer_sha256": file_hash(tokenizer_path),
           "max_shift": max_shift, "seed": seed, "min_bars": min_bars, "min_notes": min_notes}
    if not force and (folder / "meta.json").is_file():
        old = json.loads((folder / "meta.json").read_text())
        if {k: old.get(k) for k in key} == key:
            print(f"{folder}: up to date")
            return folder
    writer, pieces, skipped = _Writer(max_shift), [], {}
    indices, limits = range(len(corpus)), (min_bars, min_notes, max_shift)
    bar = tqdm(total=len(corpus), desc=f"compile {shard_name(spec)}", unit="piece", disable=not progress)
    if workers > 1:
        pool = ProcessPoolExecutor(workers, initializer=_init, initargs=(str(tokenizer_path), spec, limits))
        results = pool.map(_compile_one, indices, chunksize=4)
    else:
        _init(str(tokenizer_path), spec, limits)
        results = map(_compile_one, indices)
    for index, compiled in zip(indices, results):
        bar.update()
        if "skip" in compiled:
            skipped[corpus.ids[index]] = compiled["skip"]
            continue
        writer.add(compiled)
        song = corpus.song(index)
        pieces.append({"id": corpus.ids[index], "song": song, "tokens": compiled["tokens"],
                       "split": split_of(f"{corpus.label}/{song}", seed, SPLIT_RATIOS)})
    bar.close()
    if workers > 1:
        pool.shutdown()
    arrays = writer.arrays()
    vocab = tokenizer.codec.vocab
    token_ids = {t: vocab[t] for t in NAMED_TOKENS} | {
        t: i for t, i in vocab.ids.items() if t.startswith(("Program_", "AC"))
    }
    meta = key | {
        "spec": spec, "label": corpus.label, "vocab_size": tokenizer.vocab_size, "token_ids": token_ids,
        "unlearned_ids": sorted(unlearned_ids(tokenizer)), "tokens": int(arrays["words"].size),
        "pieces": pieces, "skipped": skipped,
    }
    _write_shard(folder, arrays, meta, Path(tokenizer_path))
    print(f"{folder}: {len(pieces)} pieces ({len(skipped)} skipped), {meta['tokens']:,} ids over all shifts")
    return folder


def _write_shard(folder: Path, arrays: dict[str, np.ndarray], meta: dict, tokenizer_path: Path) -> None:
    """Write into a temporary sibling folder, then swap it in (the old shard stays until the new one is whole)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name])
        shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
        (tmp / "meta.json").write_text(json.dumps(meta) + "\n")
        os.chmod(tmp, 0o755)
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
