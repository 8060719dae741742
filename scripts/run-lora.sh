#!/usr/bin/env bash
# LoRA on the projection matrices of a frozen base model, on POP909.
#
#   BASE=runs/pretrain/model.pth scripts/run-lora.sh
#   RANK=32 ALPHA=32 BASE=runs/pretrain/model.pth scripts/run-lora.sh   # the paper's larger LoRA
#
# Writes OUT/lora_rRANK.safetensors (+ .json), OUT/split.json (the base model's own song split: its test
# songs are those midi-rwkv evaluate draws from) and OUT/report.json (trainable parameters, time, test loss
# before/after).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- knobs ------------------------------------------------------------------------------
BASE=${BASE:-midi_rwkv.pth}                    # base model (tokenizer.json beside it)
DATA=${DATA:-"pop909:../shared/data/pop909"}  # corpus (POP909 metre from its annotations)
RANK=${RANK:-4}                                # LoRA rank (paper: 4 and 32)
ALPHA=${ALPHA:-$RANK}                          # LoRA alpha (paper: alpha = rank)
OUT=${OUT:-runs/lora-r$RANK}                   # output folder
LR=${LR:-1e-3}                                 # learning rate (cosine to LR/10)
STEPS=${STEPS:-200}                            # optimiser steps
BATCH=${BATCH:-4}                              # sequences per step
CTX_LEN=${CTX_LEN:-1024}                       # tokens per sequence
SEED=${SEED:-0}                                # example and initialisation seed (the split stays the base's)

printf '\n==== LoRA r=%s alpha=%s on %s ====\n' "$RANK" "$ALPHA" "$DATA"
midi-rwkv tune --method lora --rank "$RANK" --alpha "$ALPHA" --model "$BASE" --data "$DATA" --out "$OUT" \
  --lr "$LR" --steps "$STEPS" --batch-size "$BATCH" --ctx-len "$CTX_LEN" --seed "$SEED"
