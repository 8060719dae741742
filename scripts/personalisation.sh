#!/usr/bin/env bash
# Personalisation measured on a base model, in one command: POP909 split by song as the base's training split it;
# state tuning and LoRA (r=4, r=32) on 8, 32 and 128 songs; every adapter and the untuned base evaluated on the same
# held-out songs (CP, GS, PCHE difference, control adherence, paired tests against the base); held-out loss,
# trainable parameters, training time and peak memory; DOC with a table, a plot and a closing note.
#
#   scripts/personalisation.sh                                  # the shipped midi_rwkv.pth -> docs/personalisation.md
#   MODEL=runs/default/model.pth scripts/personalisation.sh     # another base (its own OUT, named by its sha256)
#   SIZES=2 METHODS="state lora4" STEPS=2 PROMPTS=2 CTX_LEN=256 BATCH=2 EVAL_BATCHES=1 VALIDATION=2 \
#     OUT=/tmp/pers DOC=/tmp/pers/personalisation.md scripts/personalisation.sh   # a rehearsal in a few minutes
#
# Resumable: a stage whose output is there is skipped (a split file, a tuning run with its report.json, the
# evaluation's generations), so running it again after a stop goes on where it stopped. It never deletes anything.
# Writes OUT/splits/split-N.json, OUT/runs/METHOD-N/ (adapter, split.json, report.json, tune.log), OUT/eval/
# (midi-rwkv evaluate: results.csv, summary.md, plots), DOC and DOC's .png.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- knobs ------------------------------------------------------------------------------
MODEL=${MODEL:-midi_rwkv.pth}                     # base model (its tokenizer beside it)
DATA=${DATA:-"pop909:../shared/data/pop909"}      # corpus; the base's own song split decides train/validation/test
SIZES=${SIZES:-"8 32 128"}                        # training songs per adapter (nested: the 8 are among the 32, ...)
METHODS=${METHODS:-"state lora4 lora32"}          # state | loraR (LoRA of rank R, alpha = R)
STEPS=${STEPS:-200}                               # most optimiser steps per run (tune's default)
EVAL_EVERY=${EVAL_EVERY:-25}                      # steps between validation losses (the best adapter is kept)
PATIENCE=${PATIENCE:-3}                           # stop after this many validation losses without a new best
BATCH=${BATCH:-4}                                 # sequences per step
CTX_LEN=${CTX_LEN:-1024}                          # tokens per sequence
EVAL_BATCHES=${EVAL_BATCHES:-8}                   # batches per held-out loss measurement
VALIDATION=${VALIDATION:-16}                      # validation songs that stop training
PROMPTS=${PROMPTS:-40}                            # evaluation prompts, one per held-out song
SEED=${SEED:-0}                                   # order of the train songs, examples, prompts
# The model alone by default: following the song's form copies the song's own repeats whatever the adapter learned,
# which would hide the difference the study measures. STRUCTURE=follow measures what a composer gets instead.
STRUCTURE=${STRUCTURE:-off}
[[ -f "$MODEL" ]] || { echo "personalisation.sh: no model at $MODEL" >&2; exit 2; }
MODEL_ID=$(sha256sum "$MODEL" | cut -c1-12)       # the base's name in OUT and DOC
OUT=${OUT:-runs/personalisation-$MODEL_ID}        # everything the study writes, but DOC
DOC=${DOC:-docs/personalisation.md}               # the document (and its plot, DOC with .png)

banner() { printf '\n==== %s ====\n' "$*"; }
read -r -a sizes <<< "$SIZES"
read -r -a methods <<< "$METHODS"
csv() { local IFS=,; echo "$*"; }
mkdir -p "$OUT/splits" "$OUT/runs"
echo "base $MODEL ($MODEL_ID), sizes ${sizes[*]}, methods ${methods[*]}, at most $STEPS steps, $PROMPTS prompts -> $OUT"

banner "1/4 split POP909 by song"
missing=0
for n in "${sizes[@]}"; do [[ -f "$OUT/splits/split-$n.json" ]] || missing=1; done
if [[ "$missing" == 1 ]]; then
  python bench/personalisation.py split --data "$DATA" --model "$MODEL" --sizes "$(csv "${sizes[@]}")" \
    --validation "$VALIDATION" --seed "$SEED" --out "$OUT/splits"
else
  echo "done: $OUT/splits/split-{$(csv "${sizes[@]}")}.json"
fi

banner "2/4 tune: ${methods[*]} on ${sizes[*]} songs"
systems=(--system "base:structure=$STRUCTURE")
total=$(( ${#sizes[@]} * ${#methods[@]} )); k=0
for n in "${sizes[@]}"; do
  for method in "${methods[@]}"; do
    k=$((k + 1)); run="$OUT/runs/$method-$n"
    if [[ "$method" == state ]]; then
      args=(--method state); adapter="$run/state.safetensors"; key=state
    elif [[ "$method" =~ ^lora([0-9]+)$ ]]; then
      rank=${BASH_REMATCH[1]}; args=(--method lora --rank "$rank" --alpha "$rank")
      adapter="$run/lora_r$rank.safetensors"; key=lora
    else
      echo "personalisation.sh: unknown method '$method' (state or loraR, e.g. lora4)" >&2; exit 2
    fi
    systems+=(--system "$method-$n:$key=$adapter,structure=$STRUCTURE")
    if [[ -f "$run/report.json" && -f "$adapter" ]]; then
      echo "[$k/$total] $method on $n songs: done ($run/report.json)"; continue
    fi
    echo "[$k/$total] $method on $n songs -> $run"
    mkdir -p "$run"
    midi-rwkv tune "${args[@]}" --model "$MODEL" --data "$DATA" --split-file "$OUT/splits/split-$n.json" \
      --out "$run" --steps "$STEPS" --eval-every "$EVAL_EVERY" --patience "$PATIENCE" --batch-size "$BATCH" \
      --ctx-len "$CTX_LEN" --eval-batches "$EVAL_BATCHES" --seed "$SEED" 2>&1 | tee "$run/tune.log"
  done
done

banner "3/4 evaluate the base and every adapter on the held-out songs ($PROMPTS prompts)"
if [[ -f "$OUT/eval/results.csv" && -z "$(find "$OUT/runs" -name '*.safetensors' -newer "$OUT/eval/results.csv")" ]]
then
  echo "done: $OUT/eval/results.csv is newer than every adapter"
else
  # resumable by itself: generations already on disk are kept
  midi-rwkv evaluate --out "$OUT/eval" --data "$DATA" --model "$MODEL" --prompts "$PROMPTS" --seed "$SEED" \
    "${systems[@]}"
fi

banner "4/4 report -> $DOC"
python bench/personalisation.py report --out "$OUT" --model "$MODEL" --sizes "$(csv "${sizes[@]}")" \
  --methods "$(csv "${methods[@]}")" --doc "$DOC"
