#!/usr/bin/env bash
# Rebuild the shipped default model, midi_rwkv.pth, with the settings recorded in MODEL_CARD.md:
# corpus (../shared/data, MusicXML and folk tunes converted) -> BPE (train split only) -> compiled corpus -> train
# (from the compiled corpus, one model thread) -> ship -> evaluate.
#
#   scripts/train-default.sh                      # everything, CPU, about 2 h of training
#   RESUME=1 scripts/train-default.sh             # continue an interrupted training run
#   CONVERT=0 scripts/train-default.sh            # use the MusicXML sources as far as already converted
#   SHIP=1 scripts/train-default.sh               # also copy the result to the repository root
#   TOKENIZER=midi_rwkv.tokenizer.json scripts/train-default.sh   # keep the shipped tokenizer (no new BPE)
#   INIT=midi_rwkv.pth PRESET=small TOKENIZER=midi_rwkv.tokenizer.json scripts/train-default.sh  # warm start
#
# Stages that already have their output are skipped, so the script can be re-run after a stop.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- knobs (the recorded settings) ---------------------------------------------------------
SHARED=${SHARED:-../shared/data}       # the shared data folder
CORPUS=${CORPUS:-runs/corpus}          # converted MusicXML and manifest.json
OUT=${OUT:-runs/default}               # the training run
CONVERT=${CONVERT:-1}                  # 0: do not convert more MusicXML (use what is there)
SOURCES=${SOURCES:-music21_poly,mutopia,nottingham,groove,lieder,quartets,pop909,pop909_versions,folk_essen,folk_oneills,folk_ryans,folk_airds}
COMPILED=${COMPILED:-runs/compiled}    # the compiled corpus (midi-rwkv compile-corpus), kept across runs
TOKENIZER=${TOKENIZER:-}               # an existing tokenizer instead of a new BPE (e.g. the shipped one)
INIT=${INIT:-}                         # warm start from these weights (same tokenizer and preset)
THREADS=${THREADS:-1}                  # model threads: 1 is robust on a shared 2-core machine (docs/training.md, Threads)
VOCAB_SIZE=${VOCAB_SIZE:-4000}         # chosen from the sweep below (MODEL_CARD.md)
SWEEP=${SWEEP:-1000,2000,4000,8000,16000}
PRESET=${PRESET:-6x128}                # 6 x 128, head 64 (the scaling probe in MODEL_CARD.md)
CTX_LEN=${CTX_LEN:-2048}
BATCH=${BATCH:-4}
STEPS=${STEPS:-3000}
LR=${LR:-1e-3}
LR_FINAL=${LR_FINAL:-5e-5}
WARMUP=${WARMUP:-50}
VAL_EVERY=${VAL_EVERY:-200}
CKPT_EVERY=${CKPT_EVERY:-100}
RESUME=${RESUME:-0}
SHIP=${SHIP:-0}                        # 1: copy model, sidecar and tokenizer to the repository root
EVAL_PROMPTS=${EVAL_PROMPTS:-40}       # 0 skips the evaluation

banner() { printf '\n==== %s ====\n' "$*"; }

banner "1/5 corpus"
convert_args=()
[[ "$CONVERT" == 0 ]] && convert_args=(--no-convert)
midi-rwkv build-corpus --shared "$SHARED" --out "$CORPUS" --sources "$SOURCES" "${convert_args[@]}" | tee "$CORPUS.log"
DATA=$(tail -n 1 "$CORPUS.log")       # the corpus specs, printed last

banner "2/5 tokenizer"
mkdir -p "$OUT"
if [[ -n "$TOKENIZER" ]]; then
  cp "$TOKENIZER" "$OUT/bpe.json.tmp" && mv "$OUT/bpe.json.tmp" "$OUT/bpe.json"
  echo "using $TOKENIZER"
elif [[ -f "$OUT/bpe.json" ]]; then
  echo "using $OUT/bpe.json"
else
  # shellcheck disable=SC2086
  midi-rwkv train-tokenizer $DATA --split train --vocab-size "$VOCAB_SIZE" --sweep "$SWEEP" -o "$OUT/bpe.json" | tee "$OUT/bpe-sweep.md"
fi

banner "3/5 compile and train"
# shellcheck disable=SC2086
midi-rwkv compile-corpus $DATA --tokenizer "$OUT/bpe.json" --out "$COMPILED" --quiet  # kept when up to date
if [[ -f "$OUT/model.pth" && "$RESUME" != 1 ]]; then
  echo "using $OUT/model.pth (RESUME=1 continues training)"
else
  DATA="compiled:$COMPILED" OUT="$OUT" PRESET="$PRESET" CTX_LEN="$CTX_LEN" BATCH="$BATCH" STEPS="$STEPS" \
    LR="$LR" LR_FINAL="$LR_FINAL" WARMUP="$WARMUP" VAL_EVERY="$VAL_EVERY" CKPT_EVERY="$CKPT_EVERY" INIT="$INIT" \
    WORKERS=0 THREADS="$THREADS" ACCELERATOR=cpu RESUME="$RESUME" scripts/train.sh
fi

banner "4/5 ship"
if [[ "$SHIP" == 1 ]]; then
  for pair in "model.pth:midi_rwkv.pth" "model.json:midi_rwkv.json" "tokenizer.json:midi_rwkv.tokenizer.json" "loss.png:docs/loss.png"; do
    src="$OUT/${pair%%:*}" dst="${pair#*:}"
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"   # never a half-copied model
    echo "$src -> $dst"
  done
else
  echo "SHIP=0: the model stays in $OUT"
fi

banner "5/5 evaluate"
if [[ "$EVAL_PROMPTS" -gt 0 ]]; then
  MODEL="$OUT/model.pth" PROMPTS="$EVAL_PROMPTS" OUT="$OUT/eval" scripts/evaluate.sh
fi
