"""The measures and the report of ``bench/style.py``: pitch-class and onset-position histograms of the infilled spans
against the rest of their piece, paired tests of the style against the base, the table, the plot and the document.

A span's reference is the rest of its own piece (every note but the span's): the pieces are in different keys, so a
pitch-class profile compares only inside one piece (no key is guessed), and the rest of the piece is the composer's
own usage in that key and metre. The span's original bars, scored the same way, are the style's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from symusic import Score

from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.io import atomic_write, atomic_write_text, file_sha256
from midi_rwkv.metrics.region import Region, span_notes, track_notes
from midi_rwkv.metrics.stats import compare, paired_test
from midi_rwkv.peft.tune_config import TuneConfig
from midi_rwkv.structure.features import Notes, grid_step, onset_grids

SYSTEMS = ("base", "style")
CELLS_PER_BEAT = 8  # onset-grid cells (1/32 notes, structure.features.grid_step) in a quarter note
MEASURES = {"pc": "pitch-class distance to the rest of the piece",
            "onset": "onset-position distance to the rest of the piece",
            "notes_per_bar": "notes per bar (tested: gap to the original bars)"}
SIGNIFICANT = 0.05  # Holm-corrected p below which a difference counts


# ---- histograms ----------------------------------------------------------------------------------------------------
def pitch_classes(notes: Notes) -> np.ndarray:
    return np.bincount(notes.pitch % 12, minlength=12).astype(float)


def onset_positions(notes: Notes, bars, tpq: int) -> np.ndarray:
    """Where onsets fall inside the quarter note: the bars' onset grids (``structure.features``), cells mod 8."""
    grids, _ = onset_grids(notes, bars, grid_step(tpq))
    return np.bincount(np.nonzero(grids)[1] % CELLS_PER_BEAT, minlength=CELLS_PER_BEAT).astype(float)


def distance(counts: np.ndarray, reference: np.ndarray) -> float:
    """Total variation, 1/2 sum |p - q| of the normalised histograms (0: the same, 1: disjoint); NaN when empty."""
    if counts.sum() == 0 or reference.sum() == 0:
        return float("nan")
    return float(0.5 * np.abs(counts / counts.sum() - reference / reference.sum()).sum())


def span_histograms(score: Score, region: Region) -> dict:
    notes = span_notes(score, region)
    return {"pc": pitch_classes(notes), "onset": onset_positions(notes, region.bars, region.tpq),
            "notes_per_bar": len(notes) / len(region.bars)}


def piece_histograms(piece, leave_out: Region | None = None) -> dict:
    """Histograms of every note of the original piece, less those of the ``leave_out`` span (the reference)."""
    pc, onset = np.zeros(12), np.zeros(CELLS_PER_BEAT)
    for track in piece.track_ids:
        notes = track_notes(piece.original, track)
        if leave_out is not None and track == leave_out.track:
            keep = (notes.time < leave_out.start) | (notes.time >= leave_out.end)
            notes = Notes(notes.time[keep], notes.duration[keep], notes.pitch[keep])
        pc += pitch_classes(notes)
        onset += onset_positions(notes, piece.bars, piece.original.ticks_per_quarter)
    return {"pc": pc, "onset": onset}


def measure(out: Path, folder: Path, prompts: list[dict], candidates: int, tokenizer) -> tuple[list[dict], dict]:
    """Per prompt, each system's distances (the mean over its candidates in ``folder/SYSTEM``) and the original
    bars'; and the histograms pooled over every span (and the tune pieces' onsets, every note)."""
    corpus, pieces, rows = FolderCorpus(out / "eval"), {}, []
    pooled = {s: {"pc": np.zeros(12), "onset": np.zeros(CELLS_PER_BEAT)} for s in ("original", *SYSTEMS)}
    for prompt in prompts:
        if prompt["piece"] not in pieces:
            pieces[prompt["piece"]] = tokenizer.prepare(corpus.load(corpus.ids.index(prompt["piece"])),
                                                        prompt["piece"])
        piece = pieces[prompt["piece"]]
        region = Region(prompt["track"], tuple(piece.bars[prompt["start"] : prompt["end"]]),
                        piece.original.ticks_per_quarter)
        reference = piece_histograms(piece, region)
        row = {"prompt": prompt["id"], "piece": prompt["piece"]}
        scores = {"original": [piece.original]} | {
            s: [Score(str(folder / s / f"{prompt['id']}.c{c}.mid")) for c in range(candidates)] for s in SYSTEMS}
        for system, found in scores.items():
            found = [span_histograms(score, region) for score in found]
            for key in ("pc", "onset"):
                row[f"{key}_{system}"] = float(np.nanmean([distance(h[key], reference[key]) for h in found]))
                pooled[system][key] += sum(h[key] for h in found)
            row[f"notes_per_bar_{system}"] = float(np.mean([h["notes_per_bar"] for h in found]))
        rows.append(row)
    tune = FolderCorpus(out / "tune")
    pooled["tune pieces"] = {"onset": sum(piece_histograms(tokenizer.prepare(tune.load(i)))["onset"]
                                          for i in range(len(tune)))}
    return rows, pooled


# ---- tests and table -----------------------------------------------------------------------------------------------
def values_by(results: dict[int, list[dict]], unit: str) -> dict[str, dict[str, dict[str, float]]]:
    """{system: {"MEASURE@CONTEXT": {prompt or piece: value}}}; a piece's value is the mean of its spans'."""
    out = {s: {} for s in SYSTEMS}
    for context, rows in results.items():
        for system in SYSTEMS:
            for m in MEASURES:
                groups: dict[str, list[float]] = {}
                for r in rows:
                    value = r[f"{m}_{system}"]
                    groups.setdefault(r[unit], []).append(
                        abs(value - r[f"{m}_original"]) if m == "notes_per_bar" else value)
                out[system][f"{m}@{context}"] = {k: float(np.nanmean(v)) for k, v in groups.items()}
    return out


def tests(results: dict[int, list[dict]], unit: str) -> dict:
    """Paired Wilcoxon tests of the style against the base, Holm-corrected over every measure and context."""
    values = values_by(results, unit)
    return {t.metric: t for t in compare(list(values["base"]), values["base"], values["style"])}


def fmt_p(p: float) -> str:
    return "n/a" if np.isnan(p) else f"{p:.2g}" if p >= 1e-4 else f"{p:.0e}"


def mean(rows: list[dict], key: str) -> float:
    return float(np.nanmean([r[key] for r in rows]))


def table(results: dict[int, list[dict]], pooled: dict[int, dict], loss: dict) -> tuple[str, dict]:
    """The results table (markdown) and the tests behind it."""
    by_span, by_piece = tests(results, "prompt"), tests(results, "piece")
    loss_test = paired_test("loss", {k: v["base"] for k, v in loss.items()}, {k: v["style"] for k, v in loss.items()})
    tokens = sum(v["tokens"] for v in loss.values())
    weighted = {s: sum(v[s] * v["tokens"] for v in loss.values()) / tokens for s in SYSTEMS}
    spans = {len(rows) for rows in results.values()}
    lines = ["| measure | base | base + style | the style's own (original bars) | style - base, mean [95% CI] | "
             f"p, {'/'.join(map(str, spans))} spans (Holm) | p, {len(loss)} pieces (Holm) |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| held-out loss, nats/token ({tokens:,} tokens) | {weighted['base']:.3f} | {weighted['style']:.3f} | | "
             f"{loss_test.mean_difference:+.3f} [{loss_test.ci[0]:+.3f}, {loss_test.ci[1]:+.3f}] (by piece) | | "
             f"{fmt_p(loss_test.p_value)} |"]
    for context, rows in results.items():
        lines.append(f"| ***infills, {context} bar{'s' if context != 1 else ''} of context*** | | | | | | |")
        for m, label in MEASURES.items():
            t, tp = by_span[f"{m}@{context}"], by_piece[f"{m}@{context}"]
            lines.append(f"| {label} | {mean(rows, f'{m}_base'):.3f} | {mean(rows, f'{m}_style'):.3f} | "
                         f"{mean(rows, f'{m}_original'):.3f} | {t.mean_difference:+.3f} [{t.ci[0]:+.3f}, "
                         f"{t.ci[1]:+.3f}] | {fmt_p(t.p_holm)} | {fmt_p(tp.p_holm)} |")
        hist = pooled[context]
        pc_ref, onset_ref = hist["original"]["pc"], hist["tune pieces"]["onset"]
        lines.append("| pooled pitch classes of all spans: distance to the original bars' | "
                     + " | ".join(f"{distance(hist[s]['pc'], pc_ref):.3f}" for s in SYSTEMS) + " | 0 | | | |")
        lines.append("| pooled onset positions of all spans: distance to the tune pieces' (every note) | "
                     + " | ".join(f"{distance(hist[s]['onset'], onset_ref):.3f}" for s in (*SYSTEMS, "original"))
                     + " | | | |")
    return "\n".join(lines), {"span": by_span, "piece": by_piece, "loss": loss_test}


def verdict(test) -> str:
    if np.isnan(test.p_holm) or test.p_holm >= SIGNIFICANT:
        return f"no significant change ({test.mean_difference:+.3f}, Holm p = {fmt_p(test.p_holm)})"
    side = "closer to" if test.mean_difference < 0 else "further from"
    return f"{side} the style ({test.mean_difference:+.3f}, Holm p = {fmt_p(test.p_holm)})"


LIMITS = [
    "## Limits",
    "",
    "- The pieces are new to the base, the style is not: the base trained on the other pieces of it in its train "
    "split, and an infill sees the piece around the span, so a style state has less to add (compare the base's "
    "column with the original bars'). A style far from everything the base trained on may move more, but every "
    "style in its corpus with a dozen or more test pieces is one it trained on.",
    "- One tuning run (one seed) and a dozen evaluation pieces: changes smaller than the confidence intervals above "
    "cannot be told from none.",
    "- The statistics are coarse (12 pitch classes, 8 positions in the quarter note) and 4-bar spans of one voice "
    "hold about 16 notes, so each span's distance is noisy; the candidates are averaged and the tests are paired.",
]


def summary(found: dict) -> str:
    """One paragraph: did the style shift the music toward it?"""
    closer = [k for k, t in found["span"].items() if t.p_holm < SIGNIFICANT and t.mean_difference < 0]
    further = [k for k, t in found["span"].items() if t.p_holm < SIGNIFICANT and t.mean_difference > 0]
    lt = found["loss"]
    loss = ("the held-out loss fell significantly" if lt.p_value < SIGNIFICANT and lt.mean_difference < 0 else
            "the held-out loss did not fall significantly")
    if not closer:
        return (f"**Verdict: no measured shift toward the style.** On pieces it did not tune on, {loss}, and no "
                "statistic of the infills moved closer to the style's" + (
                    f" (further: {', '.join(further)})." if further else "."))
    return (f"**Verdict: a measured shift toward the style** in {', '.join(closer)}; {loss}" + (
        f"; further from it in {', '.join(further)}." if further else "."))


# ---- plot and document ---------------------------------------------------------------------------------------------
def plot(pooled: dict[int, dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pooled), 2, figsize=(11, 3.4 * len(pooled)), squeeze=False)
    series = [("original bars", "original", "#444444"), ("base", "base", "#1f77b4"),
              ("base + style", "style", "#d62728")]
    for row, (context, hist) in zip(axes, pooled.items()):
        panels = [(row[0], "pc", "C C# D D# E F F# G G# A A# B".split(), series, "pitch classes of the spans"),
                  (row[1], "onset", ["0", "1/8", "1/4", "3/8", "1/2", "5/8", "3/4", "7/8"],
                   [("tune pieces (every note)", "tune pieces", "#999999"), *series],
                   "onset position inside the quarter note (log)")]
        for ax, key, labels, shown, title in panels:
            width = 0.8 / len(shown)
            for k, (label, system, colour) in enumerate(shown):
                counts = hist[system][key]
                ax.bar(np.arange(len(labels)) + (k - (len(shown) - 1) / 2) * width, counts / counts.sum(), width,
                       label=label, color=colour)
            ax.set_xticks(range(len(labels)), labels)
            ax.set_title(f"{title}, {context} bar(s) of context", fontsize=10)
            ax.set_ylabel("share")
            ax.legend(fontsize=8)
        row[1].set_yscale("log")
    fig.suptitle(f"{name}: infilled spans of the evaluation pieces, pooled", fontsize=11)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def split_counts(counts: dict[str, int]) -> str:
    return " / ".join(f"{counts[part]:,}" for part in ("train", "validation", "test"))


def setup(args, chosen: dict, tuned: dict, why: str) -> list[str]:
    """The document's setup section."""
    s, c = tuned["summary"], tuned["config"]
    shard = chosen["compiled_shard_checked"]
    check = (f"{shard} of them are in the compiled shard the base trained from (`{args.compiled}/folder-{args.source}`"
             "), each in its test split" if shard else "the compiled shard is not on disk, so only the hash checks it")
    counts = chosen["source_counts"]
    controls = ("with the original bars' controls" if args.controls else
                "free (no controls: the original bars' controls would hand both systems their rhythm)")
    return [
        f"- **Pieces.** The base's split is a hash of each piece's `folder/ID` (seed 0, 90/5/5; "
        f"`data.prefilter.split_key`). It puts {split_counts(counts['all'])} of `{args.source}`'s pieces in train, "
        f"validation and test, and {split_counts(counts['matching'])} of those matching `{args.match}`. The "
        f"{chosen['matching_test_pieces']} test ones are used: {check}. None of them was trained on, but the style "
        f"was: the base trained on the train split's {counts['matching']['train']} (less any its prefilter dropped). "
        f"The base's prefilter (8 bars, > 100 notes) drops {len(chosen['skipped'])} of them; in a seeded order, the "
        f"first {len(chosen['tune'])} are tuned on, the next {len(chosen['eval'])} evaluated on.",
        *([why] if why else []),
        f"- **Tune:** {', '.join(chosen['tune'])}. tune-style held out {', '.join(s.get('held_out', []))} to stop on "
        f"(their loss {s.get('held_out_loss_before')} -> {s.get('held_out_loss_after')}), so it trained on "
        f"{s['pieces']} (their loss {s['loss_on_your_pieces_before']} -> {s['loss_on_your_pieces_after']}).",
        f"- **Evaluate:** {', '.join(chosen['eval'])}.",
        f"- **Tuning:** tune-style's defaults: the initial state only, {c['steps']} steps of {c['batch_size']} x "
        f"{c['ctx_len']} tokens, lr {c['lr'] or 5e-2:g}, a held-out loss every {c['eval_every']} steps, patience "
        f"{c['patience']}. It ran {s['steps_run']} steps{' (stopped early)' if s['stopped_early'] else ''} and kept "
        f"step {s['best_step']}.",
        f"- **Time:** {tuned['wall_seconds']:.0f} s for the whole tune-style call (model, pieces, losses before and "
        f"after), {s['seconds']:.0f} s of it in the training loop ({s['steps_run']} steps), on {tuned['threads']} "
        f"torch thread(s); lscpu: {tuned['cpu']}, shared with other jobs (load average "
        f"{tuned['load_before'][0]:.1f} before, {tuned['load_after'][0]:.1f} after), so a free machine is faster.",
        f"- **Held-out loss:** each evaluation piece's loss per learned token on the same "
        f"{TuneConfig.eval_batches * TuneConfig.batch_size} training-style examples for both "
        "(`peft.tune.held_out_loader` and `evaluate`, as tune-style measures itself).",
        f"- **Infills:** every pitched track of every evaluation piece in {args.bars}-bar spans (up to {args.spans} a "
        f"track, each bar with notes in the original), {args.candidates} candidates each, the same seeds for both, "
        f"{controls}, structure setting off (neither copies the piece's repeats), with "
        f"{' and with '.join(str(c) for c in args.contexts)} bar(s) of context each side.",
        "- **Statistics:** a span's pitch-class histogram and its onset positions inside the quarter note (the "
        "1/32-note onset grid of `structure.features`, cells mod 8), as total-variation distances (0 = the same, 1 = "
        "disjoint) to the same histograms of the rest of its piece (every note but the span's), averaged over the "
        "candidates. The original bars scored the same way are the style's own. Paired Wilcoxon tests "
        "(`metrics.stats`), Holm-corrected over the measures of every context, by span and by piece (the mean of its "
        "spans); the loss is tested by piece.",
    ]


def write_doc(args, chosen: dict, tuned: dict, results: dict, pooled: dict, loss: dict, model: Path,
              why: str) -> str:
    """``args.doc`` and its PNG; returns the table."""
    text, found = table(results, pooled, loss)
    plot(pooled, args.doc.with_suffix(".png"), args.name)
    lt = found["loss"]
    lines = [
        f"# A composer's style in minutes: {args.name}", "",
        f"`midi-rwkv tune-style` on {len(chosen['tune'])} pieces of {args.name}, measured on {len(chosen['eval'])} "
        f"others. Base: `{model.name}` (`{file_sha256(model)[:12]}`). Made by `python bench/style.py --source "
        f"{args.source} --match '{args.match}'` (resumable; its files are in `{args.out}`).", "",
        "## Setup", "", *setup(args, chosen, tuned, why), "",
        "## Results", "", text, "",
        f"![pooled pitch classes and onset positions]({args.doc.with_suffix('.png').name})", "",
        "## What it shows", "",
        f"- Held-out loss on the pieces it never saw: {lt.mean_difference:+.3f} nats/token by piece (p = "
        f"{fmt_p(lt.p_value)}, {lt.n} pieces). tune-style's own line: \"{tuned['verdict']}\".",
    ]
    for context in results:
        for m, label in MEASURES.items():
            key = f"{m}@{context}"
            lines.append(f"- {context} bar(s) of context, {label.split(' (')[0]}: {verdict(found['span'][key])} by "
                         f"span; {verdict(found['piece'][key])} by piece.")
    lines += ["", summary(found), "", *LIMITS]
    atomic_write_text(args.doc, "\n".join(lines) + "\n")
    return text
