#!/usr/bin/env bash
# Pretrain MIDI-RWKV: tokenizer -> dataset -> train -> export -> lineage (when LINEAGE is set).
#
#   scripts/train.sh                                   # POP909 from ../shared/data, tiny model, CPU
#   PRESET=paper STEPS=20000 BATCH=12 scripts/train.sh  # the paper's 12 x 384 model
#   DATA="gigamidi:Metacreation/GigaMIDI::all-instruments-with-drums" TOKENIZER=tok.json \
#     PRESET=paper DEVICES=8 STRATEGY=deepspeed_stage_2 scripts/train.sh
#   RESUME=1 OUT=runs/pretrain scripts/train.sh         # continue an interrupted run
#   SMOKE=1 OUT=/tmp/smoke scripts/train.sh             # a few steps on the test fixtures (CI)
#   DATA=compiled:runs/compiled PRESET=6x192 scripts/train.sh   # from a compiled corpus (midi-rwkv compile-corpus):
#                                                       # its tokenizer, no MidiTok needed, ~20x cheaper examples
#   INIT=midi_rwkv.pth DATA=compiled:runs/compiled PRESET=small scripts/train.sh  # warm start: weights only
#   LINEAGE=8x256 PRESET=8x256 DATA=compiled:runs/compiled scripts/train.sh   # then save the run as lineage/8x256
#   RESUME_FROM=lineage/8x256 LINEAGE=8x256 OUT=runs/8x256-b scripts/train.sh  # continue it on a fresh machine:
#                                                       # its weights, settings and schedule; saved back at the end
#   midi-rwkv save-lineage runs/8x256-b --name 8x256    # save a run that is stopped (or still going) at any time
#
# It never deletes anything: a new run refuses an OUT that already holds one. A lineage folder is replaced whole
# (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."

# with RESUME_FROM, only the settings knobs set by the caller override what the lineage recorded
GIVEN=" "
for knob in DATA PRESET CTX_LEN BATCH LR LR_FINAL STEPS VAL_EVERY VAL_BATCHES CKPT_EVERY LENGTH_GROUPS LAYOUT EXAMPLES \
            SEED TOKENIZER; do
  if [[ -n "${!knob:-}" ]]; then GIVEN+="$knob "; fi
done

# ---- knobs ------------------------------------------------------------------------------
DATA=${DATA:-"pop909:../shared/data/pop909"}  # corpora, space-separated: pop909:PATH folder:PATH gigamidi:NAME[::SUBSET],
                                               # or one compiled:PATH (its own tokenizer)
OUT=${OUT:-runs/pretrain}                      # output folder
TOKENIZER=${TOKENIZER:-$OUT/bpe.json}          # learned from DATA when the file is missing
VOCAB_SIZE=${VOCAB_SIZE:-16000}                # BPE vocabulary size
PRESET=${PRESET:-tiny}                         # tiny (2 x 64) | small (6 x 128, head 32) | paper (12 x 384, 35.1 M) | LxC (head 64)
INIT=${INIT:-}                                 # start from these weights (.pth; fresh optimiser, warm-up), same tokenizer
CTX_LEN=${CTX_LEN:-2048}                       # tokens per training sequence
BATCH=${BATCH:-12}                             # sequences per step and device
LR=${LR:-1e-4}                                 # peak learning rate
LR_FINAL=${LR_FINAL:-1e-5}                     # learning rate at the last step (cosine)
WARMUP=${WARMUP:-10}                           # warm-up steps (with RESUME_FROM: the fresh optimiser's)
STEPS=${STEPS:-1000}                           # optimiser steps in the whole run
VAL_EVERY=${VAL_EVERY:-200}                    # validate every N steps
VAL_BATCHES=${VAL_BATCHES:-8}                  # validation batches each time
CKPT_EVERY=${CKPT_EVERY:-500}                  # checkpoint every N steps (all kept)
ACCELERATOR=${ACCELERATOR:-auto}               # auto | cpu | gpu
PRECISION=${PRECISION:-auto}                   # auto (bf16-mixed on GPUs and on CPUs with native bf16) | 32-true | bf16-mixed
DEVICES=${DEVICES:-1}                          # devices per node
NODES=${NODES:-1}                              # nodes
STRATEGY=${STRATEGY:-auto}                     # auto | ddp | deepspeed_stage_2
WORKERS=${WORKERS:-}                           # DataLoader workers (default: 1 for MIDI corpora, 0 for a compiled one)
LENGTH_GROUPS=${LENGTH_GROUPS:-8}              # length grouping: batch the examples of this many steps by length (1: off)
LAYOUT=${LAYOUT:-target-last}                  # where bar infill puts the infilled track: target-last | file-order (paper)
EXAMPLES=${EXAMPLES:-"{}"}                     # example-builder overrides, JSON, e.g. '{"pitch_offset": 0}'
THREADS=${THREADS:-0}                          # CPU threads for the model (0: one per core; 1 on a busy machine)
SEED=${SEED:-0}                                # example order, initial weights, and a MIDI folder's splits (a compiled
                                               # corpus keeps its own): a warm start on compiled data sees new examples
RESUME=${RESUME:-0}                            # 1: continue the run in OUT
RESUME_FROM=${RESUME_FROM:-}                   # lineage/NAME: continue that lineage in a new OUT (any machine): its
                                               # weights, fresh optimiser, its schedule from its step; its settings
                                               # are the defaults of the knobs above that are left unset
LINEAGE=${LINEAGE:-}                           # NAME: when training ends, save the run as LINEAGE_DIR/NAME (to commit)
LINEAGE_DIR=${LINEAGE_DIR:-lineage}            # the folder of lineages
SMOKE=${SMOKE:-0}                              # 1: tiny run on tests/fixtures

if [[ "$SMOKE" == 1 ]]; then
  DATA="folder:tests/fixtures" PRESET=tiny CTX_LEN=256 BATCH=1 STEPS=4 VAL_EVERY=2 CKPT_EVERY=2 VOCAB_SIZE=700 WORKERS=0
fi

banner() { printf '\n==== %s ====\n' "$*"; }

if [[ -n "$RESUME_FROM" && ! -f "$RESUME_FROM/state.json" ]]; then
  echo "train.sh: RESUME_FROM=$RESUME_FROM is not a lineage (no state.json; see docs/training.md)" >&2
  exit 2
fi
if [[ -n "$RESUME_FROM" && "$GIVEN" != *" DATA "* ]]; then  # the lineage's corpora (to choose WORKERS and say so)
  DATA=$(python -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["data"]))' "$RESUME_FROM/config.json")
fi

if [[ -z "$WORKERS" ]]; then
  # a compiled corpus's examples cost 0.2 % of a step (bench/data.py): a worker process would only compete for a core
  if [[ "$DATA" == compiled:* ]]; then WORKERS=0; else WORKERS=1; fi
fi

banner "1/5 tokenizer"
if [[ "$DATA" == compiled:* ]]; then
  TOKENIZER=""   # the compiled corpus's own
  echo "using the tokenizer ${DATA#compiled:} was compiled with"
elif [[ -n "$RESUME_FROM" && "$GIVEN" != *" TOKENIZER "* ]]; then
  TOKENIZER=""   # the lineage's own
  echo "using $RESUME_FROM's tokenizer"
elif [[ -f "$TOKENIZER" ]]; then
  echo "using $TOKENIZER"
else
  midi-rwkv train-tokenizer $DATA --vocab-size "$VOCAB_SIZE" -o "$TOKENIZER"
fi

banner "2/5 dataset"
echo "prefilter and splits run inside training (cached in $OUT/cache; report in $OUT/manifest.json)"

banner "3/5 train"
train_args=(--out "$OUT" --warmup-steps "$WARMUP" --accelerator "$ACCELERATOR" --precision "$PRECISION"
            --devices "$DEVICES" --nodes "$NODES" --strategy "$STRATEGY" --workers "$WORKERS" --threads "$THREADS")
setting() {  # setting KNOB --flag: passed unless continuing a lineage that records it and the caller left it unset
  if [[ -z "$RESUME_FROM" || "$GIVEN" == *" $1 "* ]]; then train_args+=("$2" "${!1}"); fi
}
for spec in $DATA; do train_args+=(--data "$spec"); done
setting PRESET --preset; setting CTX_LEN --ctx-len; setting BATCH --batch-size; setting STEPS --steps
setting LR --lr-init; setting LR_FINAL --lr-final; setting VAL_EVERY --val-every; setting VAL_BATCHES --val-batches
setting CKPT_EVERY --ckpt-every; setting LENGTH_GROUPS --length-groups; setting SEED --seed; setting LAYOUT --layout
setting EXAMPLES --examples
[[ "$RESUME" == 1 ]] && train_args+=(--resume)
[[ -n "$RESUME_FROM" ]] && train_args+=(--resume-from "$RESUME_FROM")
[[ -n "$INIT" ]] && train_args+=(--init "$INIT")
[[ -n "$TOKENIZER" ]] && train_args+=(--tokenizer "$TOKENIZER")
midi-rwkv train "${train_args[@]}"

banner "4/5 export"
ls -l "$OUT/model.pth" "$OUT/model.json" "$OUT/tokenizer.json" "$OUT/loss.png"

banner "5/5 lineage"
if [[ -n "$LINEAGE" ]]; then
  midi-rwkv save-lineage "$OUT" --name "$LINEAGE" --out "$LINEAGE_DIR"
else
  echo "not saved (LINEAGE=NAME saves the run as $LINEAGE_DIR/NAME, to commit)"
fi
