#!/usr/bin/env bash
# State tuning: train only the initial WKV state of a frozen base model, on POP909.
#
#   BASE=runs/pretrain/model.pth scripts/run-state-tuning.sh
#   SEED=1 OUT=runs/state-seed1 BASE=... scripts/run-state-tuning.sh   # other examples, the same songs
#
# Writes OUT/state.safetensors (+ .json), OUT/split.json (the base model's own song split: its test songs are
# those midi-rwkv evaluate draws from) and OUT/report.json (trainable parameters, time, test loss before/after).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- knobs ------------------------------------------------------------------------------
BASE=${BASE:-midi_rwkv.pth}                    # base model (tokenizer.json beside it)
DATA=${DATA:-"pop909:../shared/data/pop909"}  # corpus (POP909 metre from its annotations)
OUT=${OUT:-runs/state-tuning}                  # output folder
LR=${LR:-5e-2}                                 # learning rate (cosine to LR/10)
STEPS=${STEPS:-200}                            # optimiser steps
BATCH=${BATCH:-4}                              # sequences per step
CTX_LEN=${CTX_LEN:-1024}                       # tokens per sequence
SEED=${SEED:-0}                                # example and initialisation seed (the split stays the base's)

printf '\n==== state tuning on %s ====\n' "$DATA"
midi-rwkv tune --method state --model "$BASE" --data "$DATA" --out "$OUT" --lr "$LR" --steps "$STEPS" \
  --batch-size "$BATCH" --ctx-len "$CTX_LEN" --seed "$SEED"
