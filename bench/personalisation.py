"""The personalisation study's two Python stages (``scripts/personalisation.sh`` runs them): the song split, and the
report that compares state tuning, LoRA and the untuned base on the same held-out songs.

    python bench/personalisation.py split --data pop909:../shared/data/pop909 --model midi_rwkv.pth \\
        --sizes 8,32,128 --validation 16 --out runs/personalisation-ID/splits
    python bench/personalisation.py report --out runs/personalisation-ID --model midi_rwkv.pth \\
        --sizes 8,32,128 --methods state,lora4,lora32 --doc docs/personalisation.md

The split follows the base model's own (a hash of ``pop909/SONG``, seed 0, 90/5/5; ``midi-rwkv evaluate`` draws its
test prompts from the same test songs): every adapter trains on the first N usable songs of the base's train split
in a seeded order (so the 8 songs are among the 32, and those among the 128), stops on the first V of its validation
split, and is measured on all of its test split. ``split-N.json`` is the split file ``midi-rwkv tune --split-file``
reads.

The report reads each run's ``report.json`` (trainable parameters, held-out loss, time, peak memory) and the
evaluation's ``results.csv`` (CP, GS, PCHE difference, control adherence, per prompt), tests every adapter against
the base (paired Wilcoxon, Holm-corrected over the metrics of each comparison), draws the plot and writes the
document, which names the base by the first 12 hex digits of the sha256 of its file.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.data.prefilter import check_piece, split_subset
from midi_rwkv.data.splits import SPLIT_RATIOS
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write, atomic_write_json, atomic_write_text, file_sha256
from midi_rwkv.metrics.report import CONTROLS, MUSIC, TESTED, table
from midi_rwkv.metrics.stats import compare
from midi_rwkv.model.checkpoint import open_tokenizer, resolve_model

MIN_BARS, MIN_NOTES = 8, 100  # the prefilter's defaults, so `tune` keeps every song the split names
SHOWN = ["content_preservation", "groove_similarity", "pche_difference", "density_error", "polyphony_error"]
LABELS = {**MUSIC, **CONTROLS}
SIGNIFICANT = 0.05  # Holm-corrected p below which a difference counts


# ---- split ---------------------------------------------------------------------------------------------------------
def seeded_order(ids: list[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())


def split(data: str, model: str, sizes: list[int], validation: int, seed: int, out: Path) -> list[Path]:
    """``out/split-N.json`` for every N in ``sizes``: nested train songs, the same validation and test songs."""
    corpus = open_corpus(data)
    tokenizer = open_tokenizer(resolve_model(model))
    parts = {name: split_subset(corpus, name) for name in ("train", "validation", "test")}  # the base's split

    def usable(name: str, count: int) -> list[str]:
        subset, found = parts[name], []
        where = {piece: i for i, piece in enumerate(subset.ids)}
        for piece in seeded_order(subset.ids, seed):
            if len(found) == count:
                break
            reason = check_piece(subset, where[piece], tokenizer, MIN_BARS, MIN_NOTES)
            if reason:
                print(f"  skipping {name} song {piece}: {reason}")
            else:
                found.append(piece)
        return found

    pool = usable("train", max(sizes))
    if len(pool) < max(sizes):
        raise MidiRwkvError(f"{data}: only {len(pool)} usable songs in the base's train split, fewer than {max(sizes)}")
    held = usable("validation", validation)
    test = list(parts["test"].ids)
    written = []
    for n in sizes:
        written.append(atomic_write_json(out / f"split-{n}.json", {
            "train": pool[:n], "validation": held, "test": test,
            "note": f"the base's split of {data} (hash of label/song, seed 0, ratios {list(SPLIT_RATIOS)}); train: "
                    f"the first {n} usable songs of its train split in seed-{seed} order",
        }))
    print(f"split: train {', '.join(map(str, sizes))} of {len(parts['train'])} songs, validation {len(held)}, "
          f"test {len(test)} -> {out}")
    return written


# ---- report --------------------------------------------------------------------------------------------------------
def method_label(method: str) -> str:
    return "state tuning" if method == "state" else f"LoRA r={method.removeprefix('lora')}"


def read_results(path: Path) -> dict:
    with path.open() as f:
        return table(list(csv.DictReader(f)))


def _mean(values: dict[str, float]) -> float:
    v = [x for x in values.values() if not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.2g}"


def training_table(runs: dict[str, dict]) -> list[str]:
    lines = ["| method | songs | trainable parameters | steps run (kept) | training time | peak memory | "
             "held-out loss, base -> tuned | generalised |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in runs.items():
        lines.append(
            f"| {method_label(name.rsplit('-', 1)[0])} | {r['pieces']['train']} | {r['trainable_parameters']:,} | "
            f"{r['steps_run']} ({r.get('best_step', r['steps_run'])}) | {r['seconds']:.0f} s | "
            f"{r['peak_rss_mib']:.0f} MiB | {r['test_loss_before']:.3f} -> {r['test_loss_after']:.3f} "
            f"({r['test_loss_after'] - r['test_loss_before']:+.3f}) | {'yes' if r['generalised'] else 'no'} |")
    return lines


def metric_table(data: dict, systems: list[str]) -> list[str]:
    heads = [LABELS[m][0] + (" ↑" if LABELS[m][1] else " ↓") for m in SHOWN]
    lines = ["| system | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(SHOWN)]
    for s in systems:
        lines.append(f"| {s} | " + " | ".join(f"{_mean(data[s].get(m, {})):.3f}" for m in SHOWN) + " |")
    return lines


def tests_table(data: dict, systems: list[str]) -> tuple[list[str], dict]:
    """Each adapter against the base: mean difference (adapter - base) and Holm p, over TESTED metrics."""
    shown = [m for m in SHOWN if m in TESTED]
    lines = ["| system | " + " | ".join(f"Δ {LABELS[m][0]} (p)" for m in shown) + " |", "|---|" + "---:|" * len(shown)]
    results = {}
    for s in systems:
        tests = {t.metric: t for t in compare(TESTED, data["base"], data[s])}
        results[s] = tests
        lines.append(f"| {s} | " + " | ".join(
            f"{tests[m].mean_difference:+.3f} ({_p(tests[m].p_holm)})" for m in shown) + " |")
    return lines, results


def closing_note(runs: dict[str, dict], data: dict, sizes: list[int], methods: list[str], margin: float) -> str:
    """Does state tuning personalise better than LoRA with few songs? Judged at the fewest songs, by a stated rule."""
    n = min(sizes)
    if "state" not in methods or not [m for m in methods if m != "state"]:
        return "The study needs state tuning and at least one LoRA to judge the paper's claim."
    state = runs[f"state-{n}"]
    gain = {m: runs[f"{m}-{n}"]["test_loss_before"] - runs[f"{m}-{n}"]["test_loss_after"] for m in methods}
    facts = [f"{method_label(m)} takes the held-out loss from {runs[f'{m}-{n}']['test_loss_before']:.3f} to "
             f"{runs[f'{m}-{n}']['test_loss_after']:.3f} ({-gain[m]:+.3f})" for m in methods]
    better, worse = [], []  # LoRAs significantly better / worse than state tuning on CP or GS
    for m in methods:
        if m == "state":
            continue
        for t in compare(TESTED, data[f"state-{n}"], data[f"{m}-{n}"]):
            if t.metric in ("content_preservation", "groove_similarity") and t.p_holm < SIGNIFICANT:
                (better if t.mean_difference > 0 else worse).append(f"{method_label(m)} on {LABELS[t.metric][0]} "
                                                                    f"({t.mean_difference:+.3f}, p {t.p_holm:.2g})")
    rule = (f"Rule: at the fewest songs ({n}), the claim holds when state tuning lowers the held-out loss by more than "
            f"the margin ({margin:g}) and by at least as much as every LoRA, and no LoRA beats it on CP or GS "
            f"(Holm p < {SIGNIFICANT}); it fails when state tuning does not clear the margin, or a LoRA lowers the "
            "loss more and state tuning beats that LoRA on neither; otherwise it is mixed.")
    lora_gains = [gain[m] for m in methods if m != "state"]
    if state["test_loss_before"] - state["test_loss_after"] <= margin:
        word = "does not hold"
    elif gain["state"] >= max(lora_gains) and not better:
        word = "holds"
    elif gain["state"] < max(lora_gains) and not worse:
        word = "does not hold"
    else:
        word = "is mixed"
    return (f"**The paper's claim (state tuning personalises better than LoRA with few pieces) {word} here.** At {n} "
            f"songs, {'; '.join(facts)}. LoRA significantly better than state tuning: {', '.join(better) or 'none'}; "
            f"significantly worse: {', '.join(worse) or 'none'}.\n\n{rule}")


def plot(runs: dict[str, dict], data: dict, sizes: list[int], methods: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("held-out loss ↓", None), ("CP ↑", "content_preservation"), ("GS ↑", "groove_similarity")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (title, metric) in zip(axes, panels):
        for m in methods:
            songs = [runs[f"{m}-{n}"]["pieces"]["train"] for n in sizes]
            values = [runs[f"{m}-{n}"]["test_loss_after"] if metric is None else _mean(data[f"{m}-{n}"][metric])
                      for n in sizes]
            ax.plot(songs, values, marker="o", label=method_label(m))
        base = (runs[f"{methods[0]}-{sizes[0]}"]["test_loss_before"] if metric is None
                else _mean(data["base"][metric]))
        ax.axhline(base, color="grey", linestyle="--", label="base")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training songs")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def check_held_out(out: Path, sizes: list[int]) -> int:
    """The evaluation's prompts come from songs no adapter trained on; returns the prompt count."""
    prompts = json.loads((out / "eval" / "prompts.json").read_text())["prompts"]
    trained = {s for n in sizes for s in json.loads((out / "splits" / f"split-{n}.json").read_text())["train"]}
    leaked = sorted({p["piece"] for p in prompts} & trained)
    if leaked:
        raise MidiRwkvError(f"evaluation prompts from songs an adapter trained on: {', '.join(leaked[:5])}")
    return len(prompts)


def _infill_setting(out: Path) -> str:
    """How the evaluation's base wrote its infills, as its stored generations record it ("" when none are)."""
    record = next((out / "eval" / "generations" / "base").glob("*.json"), None)
    if record is None:
        return ""
    structure = json.loads(record.read_text())["system"].get("structure", "follow")
    if structure == "off":
        return "; the model alone, `structure=off`: following the song's form would copy its repeats whatever an " \
               "adapter learned"
    return f"; the structure setting `{structure}`"


def report(out: Path, model: str, sizes: list[int], methods: list[str], doc: Path) -> Path:
    model_path = resolve_model(model)
    model_id = file_sha256(model_path)[:12]
    runs = {f"{m}-{n}": json.loads((out / "runs" / f"{m}-{n}" / "report.json").read_text())
            for m in methods for n in sizes}
    data = read_results(out / "eval" / "results.csv")
    prompts = check_held_out(out, sizes)
    systems = ["base", *runs]
    first = next(iter(runs.values()))
    config, margin = first["config"], first["config"]["min_gain"]
    learning_rates = ", ".join(sorted({f"{method_label(k.rsplit('-', 1)[0])} {r['lr']:g}" for k, r in runs.items()}))
    split_note = json.loads((out / "splits" / f"split-{sizes[0]}.json").read_text())
    image = plot(runs, data, sizes, methods, doc.with_suffix(".png"))
    tests, _ = tests_table(data, list(runs))
    infills = _infill_setting(out)
    try:  # a folder in the checkout is named as the checkout names it, never by this machine's path
        where = out.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        where = Path(out.name)
    text = "\n".join([
        f"# Personalisation on the base model `{model_id}`",
        "",
        f"Written by `scripts/personalisation.sh` on {datetime.date.today()} from `{where}`. Base model: "
        f"`{model_path.name}` (sha256 `{model_id}`…). A document about another base is out of date: run the script "
        "again.",
        "",
        f"POP909 split by song as the base model's training split it: {split_note['note']}. Every adapter stops on "
        f"the same {len(split_note['validation'])} validation songs (loss measured every {config['eval_every']} "
        f"steps, patience {config['patience']}, the best kept; at most {config['steps']} steps of batch "
        f"{config['batch_size']} x {config['ctx_len']} tokens) and is measured on the same "
        f"{len(split_note['test'])} test songs: the held-out loss on all of them, the infills on {prompts} prompts "
        f"(one per song, `midi-rwkv evaluate`{infills}). The base was pretrained on POP909's train split, so the "
        "adapters train on songs it has seen; no model saw the test songs. LoRA has alpha = r. Learning rates "
        f"(cosine to a tenth): {learning_rates}. Training time (the training loop, validation losses included) and "
        "peak memory (resident, the whole `midi-rwkv tune` process) on this machine's CPU.",
        "",
        "## Training and held-out loss",
        "",
        *training_table(runs),
        "",
        f"'Generalised': the held-out loss fell by more than {margin:g} nats per token.",
        "",
        "## Infilling the held-out songs",
        "",
        "Means over the prompts (CP content preservation, GS groove similarity, PCHE difference, control adherence "
        "as density and polyphony error against the original bars' controls); the evaluation's own "
        "`summary.md` has every metric with confidence intervals.",
        "",
        *metric_table(data, systems),
        "",
        "## Paired tests against the base",
        "",
        "Adapter minus base, per prompt; Wilcoxon signed-rank, p Holm-corrected across the metrics of each adapter.",
        "",
        *tests,
        "",
        f"![held-out loss, CP and GS against the number of training songs]({image.name})",
        "",
        "## Closing note",
        "",
        closing_note(runs, data, sizes, methods, margin),
        "",
    ])
    atomic_write_text(doc, text)
    print(f"wrote {doc} and {image}")
    return doc


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.replace(",", " ").split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    s = sub.add_parser("split", help="write split-N.json for every training size")
    s.add_argument("--data", default="pop909:../shared/data/pop909", help="corpus (default: %(default)s)")
    s.add_argument("--model", help="base model .pth; its tokenizer checks the songs (default: the shipped model)")
    s.add_argument("--sizes", type=_ints, default=[8, 32, 128], help="training songs per adapter, e.g. 8,32,128")
    s.add_argument("--validation", type=int, default=16, help="validation songs (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="order of the train songs (default: %(default)s)")
    s.add_argument("--out", type=Path, required=True, help="folder for split-N.json")
    r = sub.add_parser("report", help="write the document and its plot")
    r.add_argument("--out", type=Path, required=True, help="the study's folder (runs/, eval/, splits/)")
    r.add_argument("--model", help="base model .pth (default: the shipped model)")
    r.add_argument("--sizes", type=_ints, default=[8, 32, 128], help="training sizes, e.g. 8,32,128")
    r.add_argument("--methods", type=lambda t: t.replace(",", " ").split(), default=["state", "lora4", "lora32"],
                   help="methods, e.g. state,lora4,lora32")
    r.add_argument("--doc", type=Path, default=Path("docs/personalisation.md"), help="document to write")
    args = parser.parse_args(argv)
    try:
        if args.stage == "split":
            split(args.data, args.model, args.sizes, args.validation, args.seed, args.out)
        else:
            report(args.out, args.model, args.sizes, args.methods, args.doc)
    except MidiRwkvError as err:
        print(f"personalisation: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
