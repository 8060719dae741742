#!/usr/bin/env bash
# Reproduce the paper's evaluation: infill held-out prompts, measure, test, plot.
#
#   scripts/evaluate.sh                                    # midi_rwkv.pth on POP909's test split, 40 prompts
#   MODEL=runs/default/model.pth OUT=runs/eval scripts/evaluate.sh
#   STATE=runs/peft-state-tuning/adapter.safetensors scripts/evaluate.sh          # adds a 'state' system
#   SYSTEMS="base t08:temperature=0.8 t12:temperature=1.2" scripts/evaluate.sh    # a sampling sweep
#   BARS=2 CONTEXT=8 FAITHFUL=1 scripts/evaluate.sh        # the original release's setting and metric definitions
#   MODE=track TRACK=random OUT=runs/eval-tracks scripts/evaluate.sh   # whole tracks written again (track infill)
#
# Re-running with the same OUT skips every generation already on disk; the report is rewritten.
# Writes OUT/results.csv, OUT/summary.md, OUT/metrics.png, OUT/controls.png, OUT/generations/.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- knobs ------------------------------------------------------------------------------
MODEL=${MODEL:-midi_rwkv.pth}                  # default checkpoint of every system
OUT=${OUT:-runs/eval}                          # report folder
DATA=${DATA:-"pop909:../shared/data/pop909"}   # corpus; its test split (training's hash split) is used
PROMPTS=${PROMPTS:-40}                         # prompts, one per piece, seeded, without replacement
BARS=${BARS:-4}                                # N bars infilled
CONTEXT=${CONTEXT:-16}                         # C bars of context on each side
TRACK=${TRACK:-0}                              # track to infill (POP909: 0 = melody), or "random"
SEED=${SEED:-0}
SYSTEMS=${SYSTEMS:-"model pure:structure=off free:free=1"}  # NAME[:key=value,...], see midi-rwkv evaluate --help;
                                               # 'pure' is the model without the song's form (structure=off)
STATE=${STATE:-}                               # a tuned state: adds the system 'state'
LORA=${LORA:-}                                 # a LoRA adapter: adds the system 'lora'
FAITHFUL=${FAITHFUL:-0}                        # 1: the original release's metric definitions
MODE=${MODE:-bars}                             # bars: N bars of a track; track: the whole track, after the others

system_args=()
for s in $SYSTEMS; do system_args+=(--system "$s"); done
[[ -n "$STATE" ]] && system_args+=(--system "state:state=$STATE")
[[ -n "$LORA" ]] && system_args+=(--system "lora:lora=$LORA")
extra=()
[[ "$FAITHFUL" == 1 ]] && extra+=(--faithful)

midi-rwkv evaluate --out "$OUT" --data "$DATA" --model "$MODEL" --prompts "$PROMPTS" --bars "$BARS" \
  --context "$CONTEXT" --track "$TRACK" --seed "$SEED" --mode "$MODE" "${system_args[@]}" "${extra[@]}"
