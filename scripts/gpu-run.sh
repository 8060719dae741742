#!/usr/bin/env bash
# One GPU session, one command: build and test the CUDA WKV7 operator, benchmark it against the PyTorch reference and
# flash-linear-attention, measure training throughput (paper and default-model presets, bf16), then train the
# default-model configuration with the minutes left. It stops itself inside BUDGET_S and writes everything into one
# folder, small enough for the device tool to hand back (at most 8 files of at most 16 MiB).
#
#   DRY=1 scripts/gpu-run.sh                   # rehearsal: the same steps on a CPU, tiny sizes (~1 min; tested)
#   PREPARE=1 scripts/gpu-run.sh               # here, before a session: wheels the GPU machine lacks -> runs/gpu-carry
#   OUT_DIR=out/gpu-run scripts/gpu-run.sh     # on a GPU machine
#
# Through the device tool (the GPU machine has PyTorch, Lightning and Triton but no network, MidiTok, symusic or fla;
# the tests' conftest imports symusic and fla is the benchmark's outside anchor, so their wheels travel):
#   1. here:  PREPARE=1 scripts/gpu-run.sh     wheels, and CARRY_CORPUS: runs/compiled's sources compiled again without
#             pitch shifts (--max-shift 0, 13 times smaller; training then uses pitch_offset 0), packed with xz into
#             runs/gpu-carry/compiled.tar.xz (78 MB of arrays -> 8.7 MB; runs/gpu-carry is about 18 MB in all)
#   2. run(command="OUT_DIR=$OUT scripts/gpu-run.sh", carry=["runs/gpu-carry"], timeout_s=600)
#      BUDGET_S=540 leaves a minute of the 10-minute command limit for stragglers; the working tree plus the carried
#      folders must stay under 64 MiB (PREPARE prints their sizes).
#   3. here:  midi-rwkv join-model FILES_AT -o runs/gpu/model.pth --tokenizer TOKENIZER
#      (FILES_AT: where the tool put the files; TOKENIZER: the one the corpus was compiled with)
#
# What comes back in OUT_DIR: gpu-run.log (everything printed), gpu-tests.xml (junit, with each test's measured
# errors), summary.json (stages, test counts, kernel and throughput tables, the training run), loss.csv, model.json
# (config sidecar), model.pth.parts.json and model.pth.part-NNN (bf16 weights, parts of at most PART_MIB MiB).
# A stage that fails or runs out of time is recorded in summary.json and the next stage still runs; the exit status is
# non-zero if any stage failed. It never deletes anything: the training run stays in WORK. scripts/train.sh's other
# knobs (LR, LR_FINAL, INIT for a warm start, ...) pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# ---- knobs ------------------------------------------------------------------------------
DRY=${DRY:-0}                                   # 1: rehearse on a CPU with tiny sizes
PREPARE=${PREPARE:-0}                           # 1: download the wheels to carry, print the device call, and stop
OUT_DIR=${OUT_DIR:-${OUT:-out/gpu-run}}         # results (on the device: $OUT, the folder that comes back)
WORK=${WORK:-${TMPDIR:-/tmp}/gpu-run-$(date +%Y%m%d-%H%M%S)}  # scratch: the training run, checkpoints, bench JSON
CARRY=${CARRY:-runs/gpu-carry}                  # carried folder: whl/ holds wheels installed before anything runs
BUDGET_S=${BUDGET_S:-540}                       # wall-clock budget for the whole script, seconds
BUILD_S=${BUILD_S:-150}                         # at most this long for the CUDA build (two head sizes)
TESTS_S=${TESTS_S:-120}                         # ... the GPU tests
WKV_S=${WKV_S:-90}                              # ... bench/wkv.py (fla's Triton kernels compile on first use)
SPEED_S=${SPEED_S:-80}                          # ... training throughput
DS_S=${DS_S:-45}                                # ... the DeepSpeed stage-2 smoke run
RESERVE_S=${RESERVE_S:-30}                      # kept back for exporting, splitting and the summary
PYTHON=${PYTHON:-python3}                       # the interpreter that has PyTorch
CARRY_CORPUS=${CARRY_CORPUS:-runs/compiled-carry}  # the compiled corpus that travels (PREPARE builds it)
GPU_DATA=${GPU_DATA:-}                          # corpus spec (default compiled:CARRY_CORPUS; DRY: fixtures, compiled)
GPU_TOKENIZER=${GPU_TOKENIZER:-midi_rwkv.tokenizer.json}  # for folder: data and DRY's compile (compiled: has its own)
TRAIN_PRESET=${TRAIN_PRESET:-6x128}             # the default model's configuration (MODEL_CARD.md, scaling probe)
CTX_LEN=${CTX_LEN:-$([[ "$DRY" == 1 ]] && echo 256 || echo 2048)}       # tokens per training sequence
BATCH=${BATCH:-auto}                            # auto: the fastest batch of PROBE_BATCHES (ties: the smaller)
PROBE_BATCHES=${PROBE_BATCHES:-$([[ "$DRY" == 1 ]] && echo "1 2" || echo "16 32 64 128")}
STEPS=${STEPS:-$([[ "$DRY" == 1 ]] && echo 4 || echo auto)}  # auto: what the measured speed fits in the time left
SPEED_FACTOR=${SPEED_FACTOR:-0.5}               # auto STEPS: the share of bench speed that training reaches
TRAIN_OVERHEAD_S=${TRAIN_OVERHEAD_S:-60}        # auto STEPS: start-up, data, validation and export, seconds
PART_MIB=${PART_MIB:-16}                        # largest file that comes back, MiB
WORKERS=${WORKERS:-$([[ "$DRY" == 1 ]] && echo 0 || echo 4)}  # DataLoader workers while training
PRECISION=${PRECISION:-auto}                    # training: auto is bf16-mixed on a GPU (scripts/train.sh)
CHECKS=${CHECKS:-$([[ "$DRY" == 1 ]] && echo 2 || echo 4)}    # validations and checkpoints per training run
VAL_BATCHES=${VAL_BATCHES:-$([[ "$DRY" == 1 ]] && echo 2 || echo 8)}  # batches per validation

if [[ "$DRY" == 1 ]]; then  # tiny sizes; one thread, since a 2-core CI machine has other work
  DEVICE=cpu ACCELERATOR=cpu WKV_SHAPE="--B 1 --T 32 --H 2 --N 16 --runs 1" THREADS="--threads 1"
  SPEED_PAPER="--presets tiny --batch 1 --ctx-len 64 --steps 5" SPEED_DEFAULT="--presets tiny --ctx-len 64 --steps 5"
  TRAIN_PRESET=tiny
else
  DEVICE=cuda ACCELERATOR=gpu WKV_SHAPE="--B 4 --T 1024 --H 6 --N 64 --runs 5" THREADS=""
  SPEED_PAPER="--presets paper --batch 12 32 --ctx-len $CTX_LEN --steps 10"
  SPEED_DEFAULT="--presets $TRAIN_PRESET --ctx-len $CTX_LEN --steps 10"
fi

banner() { printf '\n==== %s  (%d s elapsed) ====\n' "$*" "$SECONDS"; }

if [[ "$PREPARE" == 1 ]]; then
  banner "prepare: wheels for the GPU machine's Python 3.12 -> $CARRY/whl"
  mkdir -p "$CARRY/whl"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$CARRY/whl" miditok==3.1.0 symusic==0.6.0 platformdirs==4.14.8 pySmartDL==1.3.4 fla-core==0.6.0 \
    hjson==3.1.0 py-cpuinfo==9.0.0 msgpack==1.1.2 einops==0.8.1 ninja==1.13.0 psutil==7.1.3 pydantic==2.12.5 \
    pydantic-core==2.41.5 annotated-types==0.7.0 typing-inspection==0.4.2
  # DeepSpeed is an sdist on PyPI: build its pure-Python wheel here (ops compile on first use, there)
  DS_BUILD_OPS=0 "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$CARRY/whl" deepspeed==0.18.2
  # the lineage's corpus: since step 6,000 the compiled corpus without its synthetic drum mix (MODEL_CARD.md)
  SOURCE_CORPUS=${SOURCE_CORPUS:-$([[ -d runs/compiled-nomix ]] && echo runs/compiled-nomix || echo runs/compiled)}
  if [[ -d $SOURCE_CORPUS && ! -d "$CARRY_CORPUS" ]]; then
    banner "prepare: $SOURCE_CORPUS's sources without pitch shifts -> $CARRY_CORPUS"
    specs=$("$PYTHON" -c "import json, pathlib, sys; print(' '.join(json.loads(m.read_text())['spec']
      for m in sorted(pathlib.Path(sys.argv[1]).glob('[!.]*/meta.json'))))" "$SOURCE_CORPUS")  # only the sources
    # shellcheck disable=SC2086
    midi-rwkv compile-corpus $specs --tokenizer "$SOURCE_CORPUS/$(ls "$SOURCE_CORPUS" | head -n 1)/tokenizer.json" \
      --max-shift 0 --out "$CARRY_CORPUS" --quiet
  fi
  # the arrays compress about 9 times (78 MB -> 8.7 MB for all sources): they travel packed, inside CARRY
  if [[ -d "$CARRY_CORPUS" ]]; then
    tar -C "$(dirname "$CARRY_CORPUS")" -cf - "$(basename "$CARRY_CORPUS")" | xz -T0 -6 >"$CARRY/compiled.tar.xz.tmp"
    mv "$CARRY/compiled.tar.xz.tmp" "$CARRY/compiled.tar.xz"
  fi
  du -sh "$CARRY" "$CARRY_CORPUS" 2>/dev/null || true
  tree=$(git ls-files -coz --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  echo "working tree: $((tree / 1048576)) MiB; with the carried folders it must stay under 64 MiB"
  echo "device call: run(command=\"OUT_DIR=\$OUT scripts/gpu-run.sh\", carry=[\"$CARRY\"]," \
    "timeout_s=600)"
  exit 0
fi

# ---- set-up: one log, the checkout importable as is, carried wheels, a stage recorder ----
mkdir -p "$OUT_DIR" "$WORK"
OUT_DIR=$(cd "$OUT_DIR" && pwd) WORK=$(cd "$WORK" && pwd)
exec 3>&1 4>&2 > >(tee -a "$OUT_DIR/gpu-run.log") 2>&1
TEE_PID=$!
trap 'exec 1>&3 2>&4; wait "$TEE_PID" 2>/dev/null || true' EXIT  # the log is whole when the script returns
DEADLINE=$((SECONDS + BUDGET_S))
STATUS="$WORK/stages.tsv"
: >"$STATUS"
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
DRY_CORPUS="$WORK/compiled"  # DRY trains as the GPU does, from a compiled corpus: the test fixtures, compiled here
if [[ "$DRY" != 1 && -z "$GPU_DATA" && -f "$CARRY/compiled.tar.xz" ]]; then  # the packed corpus PREPARE made
  tar -C "$WORK" -xJf "$CARRY/compiled.tar.xz"
  CARRY_CORPUS="$WORK/$(basename "$CARRY_CORPUS")"
fi
GPU_DATA=${GPU_DATA:-$([[ "$DRY" == 1 ]] && echo "compiled:$DRY_CORPUS" || echo "compiled:$CARRY_CORPUS")}
banner "0/5 set-up: DRY=$DRY, results in $OUT_DIR, scratch in $WORK, budget ${BUDGET_S} s"
if [[ "$DRY" != 1 && -d "$CARRY/whl" ]]; then  # only for real: these are Python 3.12 wheels for the GPU image
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$CARRY"/whl/*.whl || echo "warning: the carried wheels did not install (another Python?); going on without them"
  export PYTHONPATH="$WORK/site:$PYTHONPATH"
fi
if ! command -v midi-rwkv >/dev/null; then  # the GPU machine runs the checkout uninstalled
  mkdir -p "$WORK/bin"
  printf '#!/usr/bin/env bash\nexec %q -m midi_rwkv "$@"\n' "$PYTHON" >"$WORK/bin/midi-rwkv"
  chmod +x "$WORK/bin/midi-rwkv"
  export PATH="$WORK/bin:$PATH"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())
import midi_rwkv.model' || echo "warning: midi_rwkv.model does not import (no MidiTok? carry the wheels: PREPARE=1)"

# stage NAME SHARE_S CMD...: CMD under the smaller of its share and the time left (less RESERVE_S); a failure or a
# timeout is recorded in $STATUS and the next stage still runs. LIMIT_S is the limit it ran under.
stage() {
  local name=$1 share=$2 left rc=0 t0=$SECONDS
  shift 2
  left=$((DEADLINE - SECONDS - RESERVE_S))
  LIMIT_S=$((share < left ? share : left))
  if ((LIMIT_S < 5)); then
    echo "skipping $name: out of time"
    printf '%s\tskipped\t0\t0\n' "$name" >>"$STATUS"
    return 0
  fi
  timeout --kill-after=15 "$LIMIT_S" "$@" || rc=$?
  if ((rc == 124 || rc == 137)); then echo "$name: stopped at its ${LIMIT_S} s limit"; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$LIMIT_S" >>"$STATUS"
}

# ---- 1. the operator and its tests ------------------------------------------------------
if [[ "$DRY" == 1 ]]; then
  banner "1/5 DRY: no GPU, so the C++ CPU operator is built instead of the CUDA one; the GPU tests run and skip"
  stage build "$BUILD_S" "$PYTHON" -c 'from midi_rwkv.model.kernels.build import load_cpu_op; load_cpu_op()'
else
  banner "1/5 CUDA operator: build (head sizes 64 and $TRAIN_PRESET's), then the GPU tests"
  stage build "$BUILD_S" "$PYTHON" -c "
import time
from midi_rwkv.model import PRESETS
from midi_rwkv.model.kernels.build import load_cuda_op
for n in sorted({64, PRESETS['$TRAIN_PRESET']().head_size}):
    t0 = time.perf_counter()
    load_cuda_op(n)
    print(f'built the CUDA operator for N={n} in {time.perf_counter() - t0:.0f} s')"
fi
if [[ "$(tail -1 "$STATUS" | cut -f2)" != 0 ]]; then  # every test would try (and fail) to build it again
  echo "skipping the GPU tests: the operator did not build (see above)"
  printf 'gpu-tests\tskipped\t0\t0\n' >>"$STATUS"
else  # xunit1: junit with each test's record_property (its measured errors)
  stage gpu-tests "$TESTS_S" "$PYTHON" -m pytest -q -rs -p no:cacheprovider -m gpu -o junit_family=xunit1 \
    --junitxml="$OUT_DIR/gpu-tests.xml" tests/model/test_kernels.py tests/model/test_kernels_gpu.py
fi

# ---- 2. kernel speed and values -------------------------------------------------------------
banner "2/5 bench/wkv.py: forward+backward, CUDA operator vs the reference and fla's chunk_rwkv7"
# shellcheck disable=SC2086  # WKV_SHAPE and THREADS are lists of options
stage wkv "$WKV_S" "$PYTHON" bench/wkv.py --devices "$DEVICE" $WKV_SHAPE --json "$WORK/wkv.json"

# ---- 3. training throughput -------------------------------------------------------------------
precision=$([[ "$DRY" == 1 ]] && echo fp32 || echo bf16)  # bf16 autocast on a CPU without native bf16 is emulated
banner "3/5 bench/train.py: tokens/s in $precision, paper preset, then the default model's over batches $PROBE_BATCHES"
# shellcheck disable=SC2086
stage speed-paper "$((SPEED_S / 2))" "$PYTHON" bench/train.py --device "$DEVICE" --data random $THREADS $SPEED_PAPER \
  --precisions "$precision" --json "$WORK/speed-paper.json"
# shellcheck disable=SC2086
stage speed-default "$((SPEED_S / 2))" "$PYTHON" bench/train.py --device "$DEVICE" --data random $THREADS \
  $SPEED_DEFAULT --batch $PROBE_BATCHES --precisions "$precision" --json "$WORK/speed-default.json"

# ---- 3b. the DeepSpeed path: a few steps of stage 2 on this GPU --------------------------------
if [[ "$DRY" == 1 ]]; then
  echo "deepspeed: skipped in DRY (its stage 2 runs on GPUs; the CPU rehearsal has no NCCL)"
  printf 'deepspeed\tskipped\t0\t0\n' >>"$STATUS"
elif "$PYTHON" -c "import deepspeed" 2>/dev/null; then
  banner "3b/5 DeepSpeed stage 2: 5 steps of $TRAIN_PRESET"
  OUT="$WORK/deepspeed" DATA="$GPU_DATA" PRESET="$TRAIN_PRESET" CTX_LEN="$CTX_LEN" BATCH=8 STEPS=5 VAL_EVERY=5 \
    VAL_BATCHES=1 CKPT_EVERY=5 WARMUP=1 EXAMPLES="{\"pitch_offset\": 0}" STRATEGY=deepspeed_stage_2 \
    ACCELERATOR="$ACCELERATOR" PRECISION="$PRECISION" WORKERS=2 RESUME=0 SMOKE=0 \
    stage deepspeed "$DS_S" bash scripts/train.sh
else
  echo "deepspeed: not importable (carry it: PREPARE=1)"
  printf 'deepspeed\tskipped\t0\t0\n' >>"$STATUS"
fi

# ---- 4. train the default model's configuration with the time left ----------------------------
# BATCH=auto: the fastest probed batch, ties (within 10 %) to the smaller: in a fixed time the same tokens in more
# steps train further. STEPS=auto: that speed, discounted for Lightning and the data loader, over the time left.
read -r plan_batch plan_steps < <("$PYTHON" - "$WORK/speed-default.json" "$BATCH" "$STEPS" "$CTX_LEN" "$SPEED_FACTOR" \
  "$((DEADLINE - SECONDS - RESERVE_S - TRAIN_OVERHEAD_S))" <<'EOF'
import json, sys
path, batch, steps, ctx, factor, seconds = sys.argv[1:]
try:
    rows = [r for r in json.load(open(path))["rows"] if r.get("tokens_per_s")]
except (OSError, ValueError, KeyError):
    rows = []
best = max((r["tokens_per_s"] for r in rows), default=None)
if batch == "auto":
    fast = sorted(r["batch"] for r in rows if r["tokens_per_s"] >= 0.9 * best) if rows else []
    batch = fast[0] if fast else 16
speed = next((r["tokens_per_s"] for r in rows if r["batch"] == int(batch)), best)
if steps == "auto":
    steps = int(max(0, int(seconds)) * float(factor) * (speed or 0) / (int(batch) * int(ctx)))
print(batch, steps)
EOF
) || true
BATCH=${plan_batch:-16} STEPS=${plan_steps:-0}
RUN="$WORK/run"
banner "4/5 train $TRAIN_PRESET on $GPU_DATA: batch $BATCH x $CTX_LEN, $STEPS steps, into $RUN"
if [[ "$GPU_DATA" == "compiled:$DRY_CORPUS" ]]; then
  stage compile 60 midi-rwkv compile-corpus folder:tests/fixtures --tokenizer "$GPU_TOKENIZER" --out "$DRY_CORPUS" \
    --quiet
fi
if ((STEPS < 1)); then
  echo "skipping training: no time left for a step (or no throughput measured)"
  printf 'train\tskipped\t0\t0\n' >>"$STATUS"
else
  every=$((STEPS / CHECKS > 0 ? STEPS / CHECKS : 1))  # checkpoints along the way: a run cut short still exports
  shift_json=$("$PYTHON" -c "import sys; from midi_rwkv.data.compiled import CompiledCorpus as C
d = sys.argv[1]; print(min(s.max_shift for s in C(d[9:]).shards) if d.startswith('compiled:') else 6)" "$GPU_DATA")
  OUT="$RUN" DATA="$GPU_DATA" TOKENIZER="$GPU_TOKENIZER" PRESET="$TRAIN_PRESET" CTX_LEN="$CTX_LEN" BATCH="$BATCH" \
    EXAMPLES="{\"pitch_offset\": $shift_json}" STEPS="$STEPS" VAL_EVERY="$every" VAL_BATCHES="$VAL_BATCHES" CKPT_EVERY="$every" \
    WARMUP=$((STEPS / 10 < 50 ? STEPS / 10 : 50)) \
    ACCELERATOR="$ACCELERATOR" PRECISION="$PRECISION" WORKERS="$WORKERS" RESUME=0 SMOKE=0 \
    stage train "$((DEADLINE - SECONDS))" bash scripts/train.sh
fi

# ---- 5. results: the model as parts, the loss curve, one summary ------------------------------
banner "5/5 results into $OUT_DIR"
model="$RUN/model.pth"
if [[ ! -f "$model" && -f "$RUN/checkpoints/last.json" ]]; then  # cut short: its last checkpoint as the model
  echo "training did not finish: exporting its last checkpoint"
  # (through Python: `midi-rwkv export RUN` has a bug, its positional RUN overwrites the command's dispatch)
  "$PYTHON" -c 'import sys; from pathlib import Path; from midi_rwkv.train.export import export
export(Path(sys.argv[1]), None, Path(sys.argv[2]))' "$RUN" "$WORK/export/model.pth" && model="$WORK/export/model.pth"
fi
if [[ -f "$model" ]]; then  # a failure here still leaves the summary to be written
  midi-rwkv split-model "$model" -o "$OUT_DIR" --part-mib "$PART_MIB" || echo "error: could not split $model"
  cp "${model%.pth}.json" "$OUT_DIR/model.json" || true
fi
if [[ -f "$RUN/loss.csv" ]]; then cp "$RUN/loss.csv" "$OUT_DIR/loss.csv"; fi
DRY="$DRY" BUDGET_S="$BUDGET_S" GPU_DATA="$GPU_DATA" TRAIN_PRESET="$TRAIN_PRESET" CTX_LEN="$CTX_LEN" BATCH="$BATCH" \
  STEPS="$STEPS" WALL_S="$SECONDS" "$PYTHON" - "$WORK" "$OUT_DIR" <<'EOF'
"""summary.json: what each stage did, from the files the stages wrote."""
import csv, json, os, sys
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

work, out = Path(sys.argv[1]), Path(sys.argv[2])


def load(path):  # a stage killed at its limit may have left nothing, or half a file
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


stages = []
for line in (work / "stages.tsv").read_text().splitlines():
    name, rc, seconds, limit = line.split("\t")
    stages.append({"name": name, "rc": rc if rc == "skipped" else int(rc), "seconds": int(seconds),
                   "limit_s": int(limit), "timed_out": rc in ("124", "137")})
tests = None
try:
    suite = next(ET.parse(out / "gpu-tests.xml").iter("testsuite"))
except (OSError, ET.ParseError, StopIteration):
    suite = None
if suite is not None:
    tests = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {"cases": {}}
    for case in suite.iter("testcase"):
        status = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        props = {p.get("name"): float(p.get("value")) for p in case.iter("property")}
        tests["cases"][case.get("name")] = {"status": status} | ({"errors": props} if props else {})
losses = list(csv.DictReader((work / "run" / "loss.csv").open())) if (work / "run" / "loss.csv").is_file() else []
vals = [r for r in losses if r.get("val_loss")]
steps_done = int(losses[-1]["step"]) if losses else 0
train = {"preset": os.environ["TRAIN_PRESET"], "data": os.environ["GPU_DATA"], "ctx_len": int(os.environ["CTX_LEN"]),
         "batch": int(os.environ["BATCH"]), "steps_planned": int(os.environ["STEPS"]), "steps_done": steps_done,
         "complete": (work / "run" / "model.pth").is_file(),  # else the model is its last checkpoint, if any
         "tokens_seen": steps_done * int(os.environ["BATCH"]) * int(os.environ["CTX_LEN"]),
         "train_loss_last": float(losses[-1]["train_loss"]) if losses else None,
         "val_loss_last": float(vals[-1]["val_loss"]) if vals else None,
         "model_steps": (load(out / "model.json") or {}).get("steps"), "model": load(out / "model.pth.parts.json")}
summary = {"dry": os.environ["DRY"] == "1", "work": str(work), "budget_s": int(os.environ["BUDGET_S"]),
           "wall_s": int(os.environ["WALL_S"]), "torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
           "stages": stages, "gpu_tests": tests, "wkv": load(work / "wkv.json"),
           "throughput": {"paper": load(work / "speed-paper.json"), "default": load(work / "speed-default.json")},
           "train": train}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
files = sorted(p for p in out.rglob("*") if p.is_file())
print(f"summary.json written; {len(files)} files in {out}:")
for p in files:
    print(f"  {p.stat().st_size / 2**20:8.2f} MiB  {p.relative_to(out)}")
if len(files) > 8 or any(p.stat().st_size > 16 * 2**20 for p in files):
    print("warning: the device tool hands back at most 8 files of at most 16 MiB each")
failed = [s["name"] for s in stages if s["rc"] not in (0, "skipped")]
print("failed or timed out: " + (", ".join(failed) if failed else "none"))
sys.exit(1 if failed else 0)
EOF
