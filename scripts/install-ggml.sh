#!/usr/bin/env bash
# Install the GGML engine (llama-cpp-python), building llama.cpp once and keeping the wheel.
#
#   scripts/install-ggml.sh            # build (about 8 minutes on 2 cores) or reuse the cached wheel, then install
#   WHEELS=/some/dir scripts/install-ggml.sh
#   CPU=avx2 TARGET=/tmp/ggml-avx2 scripts/install-ggml.sh   # a portable AVX2 build, installed beside the native one
#
# 'pip install .[ggml]' works too, but builds everything llama.cpp has (about 17 minutes on 2 cores):
# here the multimodal library, tests, examples, tools and the server are switched off, and the wheel
# is kept in WHEELS, so a second install (a new venv, CI) takes seconds. The build is native (it uses
# this CPU's AVX2/AVX-512), so the wheel is kept per set of CPU flags: a cache shared with another kind
# of CPU builds its own instead of installing one that would stop on an illegal instruction.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.3.36                                         # as pinned in pyproject.toml's ggml extra
CPU=${CPU:-native}                                     # native (this CPU's instructions) | avx2 (any x86-64 CPU with AVX2)
TARGET=${TARGET:-}                                     # install into this folder (PYTHONPATH) instead of the environment
case "$CPU" in
    native) CPU_KEY=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-12)
            CPU_ARGS="" ;;
    # What an AVX2 machine runs, buildable and runnable on an AVX-512 one: it checks the GGML engine's
    # AVX2 code paths (the WKV7 kernel's 32-float blocks) where no AVX2-only CPU is at hand.
    avx2)   CPU_KEY=avx2
            CPU_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF" ;;
    *)      echo "install-ggml.sh: CPU must be native or avx2, not '$CPU'" >&2; exit 2 ;;
esac
WHEELS=${WHEELS:-${MIDI_RWKV_CACHE:-$HOME/.cache/midi_rwkv}/wheels/$CPU_KEY}
JOBS=${JOBS:-$(nproc)}

mkdir -p "$WHEELS"
wheel=$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z "$wheel" ]]; then
    echo "building llama-cpp-python $VERSION into $WHEELS (about 8 minutes on 2 cores)..."
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF $CPU_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$JOBS \
        pip wheel --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$VERSION"  # no cache: pip's would ignore CMAKE_ARGS
    wheel=$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -n 1)
fi
if [[ -n "$TARGET" ]]; then
    pip install -q --no-deps --target "$TARGET" "$wheel"
    PYTHONPATH="$TARGET" python -c "import llama_cpp; print('GGML engine ($CPU) ready in $TARGET: llama-cpp-python', llama_cpp.__version__)"
else
    pip install -q "$wheel"
    python -c "import llama_cpp; print('GGML engine ready: llama-cpp-python', llama_cpp.__version__)"
fi
