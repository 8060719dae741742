#!/usr/bin/env bash
# End-to-end training throughput, side by side: `midi-rwkv train` as it ran before the compiled corpus (MIDI examples
# built by a DataLoader worker, fp32, one thread per core) against the compiled corpus (examples in the training
# process, bf16 where the CPU has it, one thread), on the same model, steps and source (POP909 with its versions: the
# same pieces, splits and seeds, so the same examples and a comparable loss). Prints one table row per setting: median
# tokens/s after the first 5 steps, and the mean training loss of the last 10 steps.
#
#   bench/train-e2e.sh                                # the shipped size (small), 40 steps each
#   PRESET=6x128 STEPS=60 bench/train-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${PRESET:-small}
STEPS=${STEPS:-40}
MIDI_DATA=${MIDI_DATA:-"pop909+versions:../shared/data/pop909"}
COMPILED=${COMPILED:-runs/compiled/pop909+versions-pop909}   # the same source, compiled
TOKENIZER=${TOKENIZER:-midi_rwkv.tokenizer.json}
OUT=${OUT:-runs/bench-e2e-$(date +%H%M%S)}

run() {  # name, then train.sh variables
  local name=$1; shift
  env OUT="$OUT/$name" PRESET="$PRESET" STEPS="$STEPS" BATCH=4 CTX_LEN=2048 LR=1e-3 LR_FINAL=1e-4 WARMUP=5 \
    VAL_EVERY="$STEPS" VAL_BATCHES=1 CKPT_EVERY="$STEPS" ACCELERATOR=cpu "$@" scripts/train.sh >"$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
run before DATA="$MIDI_DATA" TOKENIZER="$TOKENIZER" WORKERS=1 PRECISION=32-true THREADS=0
run compiled-1-thread DATA="compiled:$COMPILED" WORKERS=0 THREADS=1
run compiled-all-threads DATA="compiled:$COMPILED" WORKERS=0 THREADS=0
python - "$OUT" <<'PY'
import csv, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
print(f"\n{cpu}; `midi-rwkv train`, same model, batch 4 x up to 2,048 tokens\n")
print("| setting | tokens/s (median) | loss (last 10 steps) |\n|---|---:|---:|")
for name in ("before", "compiled-1-thread", "compiled-all-threads"):
    rows = list(csv.DictReader((out / name / "loss.csv").open()))
    rates = [float(r["tok_s"]) for r in rows[5:] if r["tok_s"]]
    losses = [float(r["train_loss"]) for r in rows if r["train_loss"]][-10:]
    print(f"| {name} | {statistics.median(rates):,.0f} | {sum(losses) / len(losses):.3f} |")
PY
