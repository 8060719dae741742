#!/usr/bin/env bash
# End-to-end training throughput, side by side: `midi-rwkv train` as it ran before the compiled corpus (MIDI examples
# built by a DataLoader worker, fp32, one thread per core) against the compiled corpus (examples in the training
# process, bf16 where the CPU has it, one thread), on the same model, steps and source (POP909 with its versions: the
# same pieces, splits and seeds, so the same examples and a comparable loss), and then with length-grouped batches
# (the same examples over the run, batched by length: less padding). Prints one table row per setting, after the
# first 5 steps: tokens/s computed (padding included, median), real tokens/s (not padding: their sum over the run's
# seconds), the share of padding, the mean training loss of the last 10 steps and the validation loss at the end
# (the same validation examples for every row).
#
#   bench/train-e2e.sh                                # the shipped size (small), 48 steps each
#   PRESET=6x128 STEPS=64 bench/train-e2e.sh
#   COMPILED=runs/compiled MIDI_DATA="$(for d in runs/compiled/*/; do jq -r .spec "$d/meta.json"; done | tr '\n' ' ')" \
#     bench/train-e2e.sh                              # the whole training corpus (its sources, as compiled)
#   DOC=docs/training.md bench/train-e2e.sh          # and write the table into the document's block (bench/docblock.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${PRESET:-small}
STEPS=${STEPS:-48}
GROUP=${GROUP:-8}                      # keep STEPS a multiple of GROUP: then every row sees the same examples
MIDI_DATA=${MIDI_DATA:-"pop909+versions:../shared/data/pop909"}
COMPILED=${COMPILED:-runs/compiled/pop909+versions-pop909}   # the same source, compiled
TOKENIZER=${TOKENIZER:-midi_rwkv.tokenizer.json}
OUT=${OUT:-runs/bench-e2e-$(date +%H%M%S)}
DOC=${DOC:-}                           # a document with a bench/train-e2e.sh block to write the table into (none: print)

run() {  # name, then train.sh variables
  local name=$1; shift
  env OUT="$OUT/$name" PRESET="$PRESET" STEPS="$STEPS" BATCH=4 CTX_LEN=2048 LR=1e-3 LR_FINAL=1e-4 WARMUP=5 \
    VAL_EVERY="$STEPS" VAL_BATCHES=4 CKPT_EVERY="$STEPS" ACCELERATOR=cpu "$@" scripts/train.sh >"$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
run before DATA="$MIDI_DATA" TOKENIZER="$TOKENIZER" WORKERS=1 PRECISION=32-true THREADS=0 LENGTH_GROUPS=1
run compiled-1-thread DATA="compiled:$COMPILED" WORKERS=0 THREADS=1 LENGTH_GROUPS=1
run compiled-all-threads DATA="compiled:$COMPILED" WORKERS=0 THREADS=0 LENGTH_GROUPS=1
run grouped-1-thread DATA="compiled:$COMPILED" WORKERS=0 THREADS=1 LENGTH_GROUPS="$GROUP"
run grouped-all-threads DATA="compiled:$COMPILED" WORKERS=0 THREADS=0 LENGTH_GROUPS="$GROUP"
python - "$OUT" <<'PY' | tee "$OUT/table.md"
import csv, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
print(f"{cpu}; `midi-rwkv train`, same model, batch 4 x up to 2,048 tokens:\n")
print("| setting | tokens/s computed (median) | real tokens/s | padding | loss (last 10 steps) | validation loss |")
print("|---|---:|---:|---:|---:|---:|")
for name in ("before", "compiled-1-thread", "compiled-all-threads", "grouped-1-thread", "grouped-all-threads"):
    rows = list(csv.DictReader((out / name / "loss.csv").open()))
    timed = [r for r in rows[5:] if r["tok_s"]]
    seconds = sum(float(r["step_s"]) for r in timed)
    real = sum(float(r["real_tok_s"]) * float(r["step_s"]) for r in timed)
    computed = sum(float(r["tok_s"]) * float(r["step_s"]) for r in timed)
    losses = [float(r["train_loss"]) for r in rows if r["train_loss"]][-10:]
    val = [float(r["val_loss"]) for r in rows if r["val_loss"]][-1]
    print(f"| {name} | {statistics.median(float(r['tok_s']) for r in timed):,.0f} | {real / seconds:,.0f} | "
          f"{1 - real / computed:.0%} | {sum(losses) / len(losses):.3f} | {val:.3f} |")
PY
if [[ -n "$DOC" ]]; then python bench/docblock.py "$DOC" bench/train-e2e.sh < "$OUT/table.md"; fi
