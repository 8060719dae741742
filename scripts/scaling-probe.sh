#!/usr/bin/env bash
# A short scaling probe: several model sizes trained on exactly the same examples (same seed, steps and batch, so
# the same token budget), then one table: parameters, tokens/s, validation loss at the end, and the training loss
# each size had reached when the fastest one finished (what equal wall-clock time buys).
#
#   DATA=compiled:runs/compiled scripts/scaling-probe.sh                       # 4x128 6x128 6x192, 120 steps
#   SIZES="4x128 6x192 8x256" STEPS=300 OUT=runs/probe-300 scripts/scaling-probe.sh
#
# Runs already complete in OUT are reused, so the probe can be re-run to add a size.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-compiled:runs/compiled}   # a compiled corpus (or MIDI corpora, slower)
SIZES=${SIZES:-"4x128 6x128 6x192"}    # presets: LxC (64-wide heads), small, paper...
OUT=${OUT:-runs/probe}
STEPS=${STEPS:-120}
BATCH=${BATCH:-4}
CTX_LEN=${CTX_LEN:-2048}
LR=${LR:-1e-3}
VAL_BATCHES=${VAL_BATCHES:-16}
THREADS=${THREADS:-1}                  # one: the probe must not depend on what else the machine runs

for size in $SIZES; do
  if [[ -f "$OUT/$size/model.pth" ]]; then echo "$OUT/$size: done"; continue; fi
  DATA="$DATA" OUT="$OUT/$size" PRESET="$size" STEPS="$STEPS" BATCH="$BATCH" CTX_LEN="$CTX_LEN" LR="$LR" \
    LR_FINAL="$(python -c "print($LR / 10)")" WARMUP=20 VAL_EVERY="$STEPS" VAL_BATCHES="$VAL_BATCHES" \
    CKPT_EVERY="$STEPS" WORKERS=0 THREADS="$THREADS" ACCELERATOR=cpu scripts/train.sh
done

python - "$OUT" $SIZES <<'PY'
import csv, json, sys
from pathlib import Path
from midi_rwkv.model import PRESETS, RWKV7
out, sizes = Path(sys.argv[1]), sys.argv[2:]
runs = {}
for size in sizes:
    rows = list(csv.DictReader((out / size / "loss.csv").open()))
    rates = [float(r["tok_s"]) for r in rows if r["tok_s"]]
    losses = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    vocab = json.loads((out / size / "model.json").read_text())["tokenizer_vocab_size"]
    runs[size] = {"rate": sorted(rates)[len(rates) // 2], "losses": losses,
                  "val": next(float(r["val_loss"]) for r in reversed(rows) if r["val_loss"]),
                  "params": sum(p.numel() for p in RWKV7(PRESETS[size](vocab_size=vocab)).parameters())}
fastest = max(r["rate"] for r in runs.values())
print(f"\n| size | parameters | tokens/s | validation loss after {len(runs[sizes[0]]['losses'])} steps "
      f"| train loss (mean of 10) at the fastest size's finishing time |")
print("|---|---:|---:|---:|---:|")
for size, r in runs.items():
    reached = max(1, round(len(r["losses"]) * r["rate"] / fastest))  # steps done in the fastest run's time
    window = r["losses"][max(0, reached - 10):reached]
    print(f"| {size} | {r['params']:,} | {r['rate']:,.0f} | {r['val']:.3f} | {sum(window) / len(window):.3f} |")
PY
