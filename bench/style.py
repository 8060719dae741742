"""A composer's style in minutes (issue 31, item 2): ``midi-rwkv tune-style`` on a dozen pieces of one style, none of
which the base model trained on, measured on other such pieces of that style.

    OMP_NUM_THREADS=1 python bench/style.py                       # Bach's chorales of the base's test split
    python bench/style.py --source lieder --match 'Brahms,_Johannes/*' --tune 4 --name "Brahms's songs" \
        --out runs/style-brahms --doc runs/style-brahms/style.md

Stages, each resumed from what ``--out`` already holds (delete a stage's file there to redo it):

1. pieces: the pieces of ``--source`` matching ``--match`` that the base's split puts in its test split (a hash of
   ``folder/ID``, seed 0, 90/5/5: ``data.prefilter.split_key`` for a folder corpus; checked against the compiled
   shard the base trained from where it is on disk), copied (MIDI) or converted (MusicXML, ``data.musicxml``) to
   ``OUT/converted/``; those that pass the base's prefilter (8 bars, > 100 notes) are dealt in a seeded order to
   ``OUT/tune/`` and ``OUT/eval/`` (``OUT/pieces.json``);
2. tune: ``tune-style``'s Python function on ``OUT/tune/`` (it holds one piece in five out and stops on them), timed
   (``OUT/style.safetensors``, ``OUT/tune.json``);
3. loss: per-token loss of the base and of base + style on the same examples of every evaluation piece
   (``peft.tune.held_out_loader`` and ``evaluate``, as tune-style measures itself; ``OUT/loss.json``);
4. infill: every track of every evaluation piece in ``--bars``-bar spans, by the base and by base + style with the
   same seeds, free (no controls) and with the structure setting off, so neither copies the piece's repeats, once for
   each ``--contexts`` (``OUT/generations/SETTINGS/SYSTEM/``);
5. report: pitch-class and onset-position histograms of the infilled spans against the rest of their piece, paired
   Wilcoxon tests, ``--doc`` and a PNG beside it (``bench/style_report.py``).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.data.prefilter import check_piece
from midi_rwkv.data.splits import SPLIT_RATIOS, SPLIT_SEED, split_of
from midi_rwkv.io import atomic_write, atomic_write_json, file_sha256
from midi_rwkv.model.checkpoint import model_layout, open_model, resolve_model
from midi_rwkv.peft.tune_config import TuneConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import style_report  # noqa: E402  (bench/ is no package: its sibling, found beside this file)
from machine import cpu_name  # noqa: E402  (bench/machine.py, beside this file)

SOURCES = {  # name -> (folder under --shared, kind): the training corpus's sources (data.build_corpus.SOURCES)
    "music21_poly": ("music21_poly", "midi"),
    "mutopia": ("mutopia", "midi"),
    "lieder": ("sources/lieder/scores", "musicxml"),
    "quartets": ("sources/quartets/scores", "musicxml"),
}
SUFFIXES = {"midi": (".mid", ".midi"), "musicxml": (".mxl", ".musicxml", ".xml")}
MIN_BARS, MIN_NOTES = 8, 100  # the base's prefilter (data.prefilter), so every piece is one training could have read
SYSTEMS = style_report.SYSTEMS


# ---- 1. pieces -----------------------------------------------------------------------------------------------------
def seeded_order(ids: list[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())


def test_split_ids(root: Path, kind: str, match: str) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    """{id: source file} of the matching pieces in the base's test split, and the split counts of the whole source
    (``all``) and of the matching pieces (``matching``).

    An id is the path under ``root`` with a ``.mid`` suffix: the id of the converted MIDI in a folder corpus, whose
    split ``folder/ID`` decides (``data.prefilter.split_key``).
    """
    chosen, counts = {}, {part: {"train": 0, "validation": 0, "test": 0} for part in ("all", "matching")}
    for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES[kind]):
        piece = path.relative_to(root).with_suffix(".mid").as_posix()
        split = split_of(f"folder/{piece}", SPLIT_SEED, SPLIT_RATIOS)
        counts["all"][split] += 1
        if fnmatch.fnmatch(piece, match):
            counts["matching"][split] += 1
            if split == "test":
                chosen[piece] = path
    return chosen, counts


def compiled_splits(compiled: Path, source: str) -> dict[str, str] | None:
    """{id: split} of the compiled shard of ``source`` (what training read), or None when it is not on disk."""
    meta = compiled / f"folder-{source}" / "meta.json"
    try:
        return {p["id"]: p["split"] for p in json.loads(meta.read_text())["pieces"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def convert(source: Path, target: Path, kind: str) -> None:
    """``source`` as MIDI at ``target``, atomically: a copy, or MusicXML parsed by ``data.musicxml``."""
    if target.exists():
        return
    if kind == "midi":
        atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
    else:
        from midi_rwkv.data.musicxml import musicxml_to_score

        score = musicxml_to_score(source)
        atomic_write(target, score.dump_midi)


def choose_pieces(args, tokenizer) -> dict:
    """Stage 1: ``OUT/pieces.json`` (which piece is tuned on, which evaluated on, and how the split was checked)."""
    record = args.out / "pieces.json"
    settings = {k: str(getattr(args, k)) for k in ("source", "match", "seed", "tune", "eval")}
    if record.is_file():
        chosen = json.loads(record.read_text())
        if chosen["settings"] != settings:
            raise SystemExit(f"{args.out} holds pieces chosen with {chosen['settings']}: give another --out")
        return chosen
    folder, kind = SOURCES[args.source]
    found, counts = test_split_ids(args.shared / folder, kind, args.match)
    print(f"{args.source}: {counts['all']} by the base's split; {args.match!r} matches {counts['matching']}")
    stored = compiled_splits(args.compiled, args.source)
    disagree = [] if stored is None else [p for p in found if stored.get(p, "test") != "test"]
    if disagree:
        raise SystemExit(f"the compiled shard puts {disagree[0]} in its {stored[disagree[0]]} split, not test")
    order, usable, skipped = seeded_order(list(found), args.seed), [], {}
    for piece in tqdm(order, desc="converting", unit="piece", disable=args.quiet):
        convert(found[piece], args.out / "converted" / piece, kind)
    corpus = FolderCorpus(args.out / "converted")
    where = {piece: i for i, piece in enumerate(corpus.ids)}
    for piece in order:
        reason = check_piece(corpus, where[piece], tokenizer, MIN_BARS, MIN_NOTES)
        if reason:
            skipped[piece] = reason
        else:
            usable.append(piece)
    n_eval = args.eval or len(usable) - args.tune
    if args.tune < 2 or n_eval < 2 or args.tune + n_eval > len(usable):
        raise SystemExit(f"{len(usable)} usable test pieces: too few for {args.tune} to tune on and {n_eval} to "
                         "evaluate on (pick another --match, or fewer)")
    parts = {"tune": usable[: args.tune], "eval": usable[args.tune : args.tune + n_eval]}
    for part, pieces in parts.items():
        for piece in pieces:
            convert(args.out / "converted" / piece, args.out / part / piece, "midi")
    in_shard = None if stored is None else sum(p in stored for p in usable)
    chosen = {"settings": settings, "source_counts": counts, "matching_test_pieces": len(found), "skipped": skipped,
              "compiled_shard_checked": in_shard, **parts}
    atomic_write_json(record, chosen)
    return chosen


# ---- 2. tune -------------------------------------------------------------------------------------------------------
def tune(args) -> dict:
    """Stage 2: ``OUT/style.safetensors`` by tune-style's function, and ``OUT/tune.json`` (its summary and times)."""
    record = args.out / "tune.json"
    if record.is_file():
        tuned = json.loads(record.read_text())
        if tuned["config"]["seed"] != args.seed or (args.steps and tuned["config"]["steps"] != args.steps):
            raise SystemExit(f"{record} was tuned with other --seed or --steps: give another --out")
        return tuned
    from midi_rwkv.peft.finetune import tune_style

    overrides = {"steps": args.steps} if args.steps else {}
    config = TuneConfig(data=f"folder:{args.out / 'tune'}", out=str(args.out), model=args.model, method="state",
                        seed=args.seed, **overrides)
    load_before, start = os.getloadavg(), time.perf_counter()
    path, summary, line = tune_style(config, args.out / "tune", args.out / "style.safetensors",
                                     progress=not args.quiet)
    wall = time.perf_counter() - start
    print(line)
    result = {"style": str(path), "summary": summary, "verdict": line, "wall_seconds": round(wall, 1),
              "threads": torch.get_num_threads(), "cpu": cpu_name(), "load_before": load_before,
              "load_after": os.getloadavg(), "config": asdict(config)}
    atomic_write_json(record, result)
    return result


# ---- 3. loss -------------------------------------------------------------------------------------------------------
def losses(args, model, adapter, tokenizer, layout: str) -> dict:
    """Stage 3: ``OUT/loss.json``: each evaluation piece's loss per learned token, base and style, on one set of
    examples (drawn as tune-style draws its held-out ones)."""
    record = args.out / "loss.json"
    if record.is_file():
        return json.loads(record.read_text())
    from midi_rwkv.peft.tune import evaluate, held_out_loader

    config, corpus, rows = TuneConfig(data="-", out="-"), FolderCorpus(args.out / "eval"), {}
    for index in tqdm(range(len(corpus)), desc="held-out loss", unit="piece", disable=args.quiet):
        batches = list(held_out_loader(corpus, [index], tokenizer, config.ctx_len, config.batch_size,
                                       config.eval_batches, args.seed + 7, layout))
        tokens = sum(int((b["labels"] != -100).sum()) for b in batches)
        rows[corpus.ids[index]] = {"tokens": tokens, "base": evaluate(model, None, batches),
                                   "style": evaluate(model, adapter, batches)}
    atomic_write_json(record, rows)
    return rows


# ---- 4. infill -----------------------------------------------------------------------------------------------------
def spans(piece, bars: int, per_track: int) -> list[tuple[int, int, int]]:
    """(track, start, end): up to ``per_track`` non-overlapping ``bars``-bar spans of each pitched track, spread over
    the piece, each bar of which has a note of the track in the original."""
    edges = np.array([b.start for b in piece.bars] + [piece.bars[-1].end])
    found = []
    for track in piece.track_ids:
        if piece.original.tracks[track].is_drum:
            continue
        per_bar = np.histogram(piece.original.tracks[track].notes.numpy()["time"], bins=edges)[0]
        starts = [s for s in range(0, piece.num_bars - bars + 1, bars) if per_bar[s : s + bars].all()]
        keep = np.unique(np.linspace(0, len(starts) - 1, min(per_track, len(starts))).round().astype(int))
        found += [(track, starts[k], starts[k] + bars) for k in keep] if starts else []
    return found


def prompts_of(args, tokenizer) -> list[dict]:
    corpus, prompts = FolderCorpus(args.out / "eval"), []
    for index, piece_id in enumerate(corpus.ids):
        piece = tokenizer.prepare(corpus.load(index), piece_id)
        for track, start, end in spans(piece, args.bars, args.spans):
            name = f"{Path(piece_id).with_suffix('').as_posix().replace('/', '__')}-t{track}-b{start}"
            prompts.append({"id": name, "piece": piece_id, "track": track, "start": start, "end": end})
    return prompts


def generations(args, context: int) -> Path:
    """Where the infills of one context go: a folder per setting that changes them, so no run reuses another's."""
    mode = "controls" if args.controls else "free"
    return (args.out / "generations" /
            f"context{context}-bars{args.bars}-spans{args.spans}-n{args.candidates}-seed{args.seed}-{mode}")


def generate(args, prompts: list[dict], context: int, model_path: Path, style: Path, tokenizer) -> None:
    """Stage 4: ``generations(args, context)/SYSTEM/PROMPT.cK.mid``; a span whose candidates are all there is
    skipped."""
    from midi_rwkv.inference.infiller import Infiller

    corpus, pieces = FolderCorpus(args.out / "eval"), {}
    for system in SYSTEMS:
        folder = generations(args, context) / system
        todo = [(k, p) for k, p in enumerate(prompts)
                if not all((folder / f"{p['id']}.c{c}.mid").exists() for c in range(args.candidates))]
        if not todo:
            continue
        infiller = Infiller.load(model_path, state=style if system == "style" else None, structure="off")
        for position, prompt in tqdm(todo, desc=f"infilling ({system}, {context} bars of context)", unit="span",
                                     disable=args.quiet):
            if prompt["piece"] not in pieces:
                pieces[prompt["piece"]] = tokenizer.prepare(corpus.load(corpus.ids.index(prompt["piece"])),
                                                            prompt["piece"])
            seed = args.seed * 1_000_003 + position  # the same for both systems
            bars = (prompt["start"], prompt["end"])
            candidates = infiller.infill(pieces[prompt["piece"]], prompt["track"], bars, n=args.candidates,
                                         context_bars=context, seed=seed, free=not args.controls)
            for c, candidate in enumerate(candidates):
                atomic_write(folder / f"{prompt['id']}.c{c}.mid", candidate.score.dump_midi)


def lieder_note(args) -> str:
    """Why not one composer of OpenScore Lieder (the first choice): the most test songs one composer has."""
    root = args.shared / SOURCES["lieder"][0]
    if args.source == "lieder" or not root.is_dir():
        return ""
    found, _ = test_split_ids(root, "musicxml", "*")
    composers = [piece.split("/")[0] for piece in found]
    best = sorted(((composers.count(c), c) for c in set(composers)), reverse=True)[:3]
    return ("- **Why not a composer of OpenScore Lieder:** one composer has at most "
            f"{best[0][0]} songs in the base's test split ({', '.join(f'{c} {n}' for n, c in best)}), too few to tune "
            "on a dozen and evaluate on the others.")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=sorted(SOURCES), default="music21_poly",
                   help="corpus source (default %(default)s)")
    p.add_argument("--match", default="bach_*", help="glob on the piece ids of the source (default %(default)s)")
    p.add_argument("--name", default="Bach's chorales", help="the style's name in the report (default %(default)s)")
    p.add_argument("--shared", type=Path, default=Path("../shared/data"), help="shared data (default %(default)s)")
    p.add_argument("--compiled", type=Path, default=Path("runs/compiled"),
                   help="compiled corpus the base trained from, to check the split against (default %(default)s)")
    p.add_argument("--model", help="base model .pth (default: the shipped midi_rwkv.pth)")
    p.add_argument("--out", type=Path, default=Path("runs/style"), help="working folder (default %(default)s)")
    p.add_argument("--doc", type=Path, default=Path("docs/style.md"),
                   help="report, PNG beside it (default %(default)s)")
    p.add_argument("--tune", type=int, default=12, help="pieces to tune on (default %(default)s)")
    p.add_argument("--eval", type=int, default=0, help="pieces to evaluate on (default 0: all the others)")
    p.add_argument("--steps", type=int, help="tune-style --steps (default: its own)")
    p.add_argument("--seed", type=int, default=0, help="order of the pieces, tuning and sampling (default %(default)s)")
    p.add_argument("--bars", type=int, default=4, help="bars per infilled span (default %(default)s)")
    p.add_argument("--spans", type=int, default=3, help="spans per track and piece at most (default %(default)s)")
    p.add_argument("--candidates", type=int, default=8, help="candidates per span and system (default %(default)s)")
    p.add_argument("--contexts", type=lambda t: [int(x) for x in t.split(",")], default=[16, 1],
                   help="bars of context each side, one infill run each, comma-separated (default 16,1: the "
                   "default infill's, and almost none, where the style state has the most say)")
    p.add_argument("--controls", action="store_true", help="give the original bars' controls (default: free)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def stage(name: str) -> None:
    print(f"== {name}", flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    model_path = resolve_model(args.model)
    run = {"model": str(model_path), "model_sha256": file_sha256(model_path)[:12],
           **{k: str(v) for k, v in vars(args).items()}}
    record = args.out / "run.json"
    if record.is_file() and json.loads(record.read_text())["model_sha256"] != run["model_sha256"]:
        raise SystemExit(f"{args.out} was made with another base model: give another --out")
    atomic_write_json(record, run)
    model, tokenizer, _ = open_model(model_path)
    from midi_rwkv.peft.adapters import load_adapter

    stage("1/5 pieces")
    chosen = choose_pieces(args, tokenizer)
    print(f"tune on {len(chosen['tune'])}, evaluate on {len(chosen['eval'])}")
    stage("2/5 tune-style")
    tuned = tune(args)
    print(f"tune-style took {tuned['wall_seconds']} s on {tuned['threads']} thread(s)")
    stage("3/5 held-out loss")
    style = args.out / "style.safetensors"
    loss = losses(args, model, load_adapter(style, model), tokenizer, model_layout(model_path))
    stage("4/5 infills")
    prompts = prompts_of(args, tokenizer)
    atomic_write_json(args.out / "prompts.json", prompts)
    for context in args.contexts:
        generate(args, prompts, context, model_path, style, tokenizer)
    stage("5/5 report")
    results, pooled = {}, {}
    for context in args.contexts:
        results[context], pooled[context] = style_report.measure(args.out, generations(args, context), prompts,
                                                                 args.candidates, tokenizer)
        atomic_write_json(generations(args, context) / "measures.json", results[context])
    print(style_report.write_doc(args, chosen, tuned, results, pooled, loss, model_path, lieder_note(args)))
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
