#!/usr/bin/env bash
# Mutation testing of chosen modules, run by hand (not in CI: it takes long). See docs/testing.md.
#
#   scripts/mutation.sh tokenizer/merge.py                    # one module (under a minute on one core)
#   scripts/mutation.sh inference/constraints.py studio/session.py
#   CHILDREN=2 scripts/mutation.sh metrics/systems.py          # two mutants at a time
#
# MODULE: a path under midi_rwkv/ (tokenizer/merge.py, midi_rwkv/tokenizer/merge.py or tokenizer.merge), one of the
# modules [tool.mutmut] in pyproject.toml lists. mutmut runs in a scratch copy of the working tree (tracked and
# untracked files, nothing git ignores), with only that module mutated and only its own test files run; then the
# score per module is printed: killed / (mutants - equivalent), where the equivalent mutants are the ones
# docs/testing.md names under "## Equivalent mutants". Survivors: `cd $MUTATION_DIR && mutmut show NAME`.
set -euo pipefail

# ---- knobs -----------------------------------------------------------------------------------------------------------
MUTATION_DIR=${MUTATION_DIR:-${TMPDIR:-/tmp}/midi-rwkv-mutation}  # the scratch copy (replaced on every run)
CHILDREN=${CHILDREN:-1}  # mutants tested at a time (one core each)
THREADS=${THREADS:-1}  # torch / BLAS threads per test process

if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
    sed -n '2,12p' "$0"
    exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)

# ---- the modules and the tests that are theirs -------------------------------------------------------------------------
tests_of() {
    case $1 in
        midi_rwkv/inference/constraints.py)
            echo tests/inference/test_constraints_mutants.py tests/inference/test_inference.py tests/inference/test_fills.py ;;
        midi_rwkv/inference/infiller.py)
            echo tests/inference/test_infiller_mutants.py tests/inference/test_infiller_mutants_bars.py \
                tests/inference/test_inference.py tests/inference/test_fills.py \
                tests/inference/test_structure_fill.py tests/inference/test_request.py tests/inference/test_ggml.py \
                tests/inference/test_torch_threads.py tests/peft/test_peft.py ;;
        midi_rwkv/studio/server.py) echo tests/studio/test_server_mutants.py tests/studio/test_server.py ;;
        midi_rwkv/studio/session.py)
            echo tests/studio/test_session_mutants.py tests/studio/test_session.py tests/studio/test_server.py ;;
        midi_rwkv/metrics/systems.py) echo tests/metrics/test_systems_mutants.py tests/metrics/test_evaluate.py ;;
        midi_rwkv/metrics/evaluate.py)
            echo tests/metrics/test_evaluate_mutants.py tests/metrics/test_evaluate.py tests/metrics/test_structure_copy.py ;;
        midi_rwkv/data/compile.py) echo tests/data/test_compile_mutants.py tests/data/test_compiled.py ;;
        midi_rwkv/tokenizer/merge.py) echo tests/tokenizer/test_merge.py ;;
        midi_rwkv/tokenizer/controls.py)
            echo tests/tokenizer/test_controls_mutants.py tests/tokenizer/test_controls.py tests/tokenizer/test_sequences.py ;;
        *) return 1 ;;
    esac
}

MODULES=()
TESTS=()
for arg in "$@"; do
    module=${arg#midi_rwkv/}
    module=${module#midi_rwkv.}
    module=${module%.py}
    module=midi_rwkv/${module//.//}.py
    if ! found=$(tests_of "$module"); then
        echo "mutation.sh: $arg is not one of the modules pyproject.toml's [tool.mutmut] lists" >&2
        exit 2
    fi
    MODULES+=("$module")
    for t in $found; do
        [[ " ${TESTS[*]-} " == *" $t "* ]] || TESTS+=("$t")
    done
done

# ---- a scratch copy of the working tree ------------------------------------------------------------------------------
echo "== copying the working tree to $MUTATION_DIR"
if [[ -e $MUTATION_DIR && ! -e $MUTATION_DIR/.midi-rwkv-mutation ]]; then
    echo "mutation.sh: $MUTATION_DIR exists and is not a scratch copy of this script's: set MUTATION_DIR" >&2
    exit 2
fi
rm -rf "$MUTATION_DIR"
mkdir -p "$MUTATION_DIR"
touch "$MUTATION_DIR/.midi-rwkv-mutation"
(cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf -) \
    | tar -xf - -C "$MUTATION_DIR"

# ---- mutmut's configuration, narrowed to these modules and their tests ------------------------------------------------
python - "$MUTATION_DIR/pyproject.toml" "${#MODULES[@]}" "${MODULES[@]}" "${TESTS[@]}" <<'EOF'
import json, re, sys, tomllib
path, count = sys.argv[1], int(sys.argv[2])
modules, tests = sys.argv[3:3 + count], sys.argv[3 + count:]
text = open(path).read()
config = tomllib.loads(text)["tool"]["mutmut"]
config |= {"only_mutate": modules, "pytest_add_cli_args_test_selection": tests}
section = "[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
open(path, "w").write(re.sub(r"\[tool\.mutmut\]\n.*?(?=^\[|\Z)", section + "\n", text, flags=re.S | re.M))
EOF

# ---- mutmut ------------------------------------------------------------------------------------------------------------
echo "== mutmut: ${MODULES[*]} against ${TESTS[*]}"
cd "$MUTATION_DIR"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS TOKENIZERS_PARALLELISM=false PYTHONDONTWRITEBYTECODE=1
# mutmut forks a test process per mutant from one that has run the tests. Once a test computes on several torch
# (OpenMP) threads, that process keeps a pool of them, and a process forked from it waits forever in its first
# parallel operation for threads that were not forked. OMP_THREAD_LIMIT caps every parallel region at THREADS, so no
# pool is made; tests still read back the thread counts they set (torch.get_num_threads).
export OMP_THREAD_LIMIT=$THREADS
started=$SECONDS
python -m mutmut run --max-children "$CHILDREN" >mutmut.log 2>&1 || {
    tail -n 40 mutmut.log >&2
    echo "mutation.sh: mutmut failed (the log: $MUTATION_DIR/mutmut.log)" >&2
    exit 1
}
echo "   $((SECONDS - started)) s; log: $MUTATION_DIR/mutmut.log"

# ---- the score per module ----------------------------------------------------------------------------------------------
echo "== score (killed / (mutants - equivalent); equivalent: docs/testing.md)"
python -m mutmut results --all true >results.txt
python - docs/testing.md results.txt "${MODULES[@]}" <<'EOF'
import os, re, sys
from collections import Counter
doc, results, modules = sys.argv[1], sys.argv[2], [m[:-3].replace("/", ".") for m in sys.argv[3:]]
text = open(doc).read() if os.path.exists(doc) else ""
section = re.search(r"^## Equivalent mutants\n(.*?)(?=^## |\Z)", text, re.S | re.M)
equivalent = set(re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", section.group(1))) if section else set()
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
counts = {m: Counter() for m in modules}
survivors = []
for line in open(results):
    name, _, status = line.strip().rpartition(": ")
    module = max((m for m in modules if name.startswith(m + ".")), key=len, default=None)
    if module is None:
        continue
    kind = "equivalent" if name in equivalent else "killed" if status in KILLED else status
    counts[module][kind] += 1
    if kind not in ("killed", "equivalent"):
        survivors.append(f"  {status:>10}  {name}")
print(f"{'module':<34} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'equiv.':>6} {'score':>7}")
for module, c in counts.items():
    total = sum(c.values())
    scored = total - c["equivalent"] - c["skipped"] - c["not checked"]
    score = f"{100 * c['killed'] / scored:.1f} %" if scored else "-"
    print(f"{module:<34} {total:>7} {c['killed']:>6} {c['survived'] + c['suspicious']:>8} {c['no tests']:>8} "
          f"{c['equivalent']:>6} {score:>7}")
if survivors:
    print("not killed (triage each: a test that kills it, or docs/testing.md's list of equivalent mutants):")
    print("\n".join(survivors))
EOF
