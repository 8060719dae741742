#!/usr/bin/env bash
# Install the GGML engine (llama-cpp-python), building llama.cpp once and keeping the wheel.
#
#   scripts/install-ggml.sh            # build (about 8 minutes on 2 cores) or reuse the cached wheel, then install
#   WHEELS=/some/dir scripts/install-ggml.sh
#
# 'pip install .[ggml]' works too, but builds everything llama.cpp has (about 17 minutes on 2 cores):
# here the multimodal library, tests, examples, tools and the server are switched off, and the wheel
# is kept in WHEELS, so a second install (a new venv, CI) takes seconds. The build is native (it uses
# this CPU's AVX2/AVX-512), so the wheel is kept per set of CPU flags: a cache shared with another kind
# of CPU builds its own instead of installing one that would stop on an illegal instruction.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.3.36                                         # as pinned in pyproject.toml's ggml extra
CPU_KEY=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-12)
WHEELS=${WHEELS:-${MIDI_RWKV_CACHE:-$HOME/.cache/midi_rwkv}/wheels/$CPU_KEY}
JOBS=${JOBS:-$(nproc)}

mkdir -p "$WHEELS"
wheel=$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z "$wheel" ]]; then
    echo "building llama-cpp-python $VERSION into $WHEELS (about 8 minutes on 2 cores)..."
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$JOBS \
        pip wheel --no-deps -w "$WHEELS" "llama-cpp-python==$VERSION"
    wheel=$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -n 1)
fi
pip install -q "$wheel"
python -c "import llama_cpp; print('GGML engine ready: llama-cpp-python', llama_cpp.__version__)"
