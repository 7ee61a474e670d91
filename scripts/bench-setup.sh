#!/usr/bin/env bash
# The language-model speed comparison's baseline (not part of `make test`): llama-cpp-python,
# which pip builds from source (llama.cpp's CMake build, native CPU flags), in a venv outside
# the clone, ~/.cache/verity/bench/venv. Idempotent; about 15 minutes on 2 cores the first time.
set -euo pipefail
dir="${VERITY_CACHE:-$HOME/.cache/verity}/bench"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ]; then
	python3 -m venv "$dir/venv"
fi
if ! "$dir/venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
	CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" "$dir/venv/bin/pip" install \
		"llama-cpp-python==0.3.16" "numpy==2.4.6"
fi
"$dir/venv/bin/python" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'
