#!/usr/bin/env bash
# Rebuilds the example models deterministically from the 8x8 digits data set that ships inside
# the scikit-learn wheel on PyPI (sklearn/datasets/data/digits.csv.gz; nothing from a model hub):
#   1. pip downloads the pinned wheel (hash-checked) and extracts the CSV into the cache;
#   2. examples/train_digits.rs trains the MLP and the CNN with libtorch (one thread, fixed seeds)
#      and writes digits_{mlp,cnn}.{json,safetensors} here and the train/test split into the cache;
#   3. `verity-worker quantize` turns each into a Verity model file (+ a sample input), printing
#      float and quantized accuracy on the 450 held-out images.
# Run from the repository root: bash inference-worker/models/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${VERITY_CACHE:-$HOME/.cache/verity}/digits"
models=inference-worker/models
mkdir -p "$cache"
export LIBTORCH="${LIBTORCH:-$(bash scripts/install-libtorch.sh | tail -n1)}"

if [ ! -s "$cache/digits.csv" ]; then
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT
	echo "scikit-learn==1.5.2 --hash=sha256:f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1" > "$work/req.txt"
	python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
		--platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
		-r "$work/req.txt" -d "$work"
	python3 - "$work" "$cache/digits.csv" <<'PY'
import glob, gzip, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/scikit_learn-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
	data = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))
open(sys.argv[2], "wb").write(data)
PY
fi

cargo run --release --locked -q -p verity-worker --example train_digits -- "$cache/digits.csv" "$models" "$cache"
cargo build --release --locked -q -p verity-worker
for m in mlp cnn; do
	echo "== digits_$m"
	"${CARGO_TARGET_DIR:-target}/release/verity-worker" quantize --arch "$models/digits_$m.json" --weights "$models/digits_$m.safetensors" \
		--calib "$cache/train.safetensors" --eval "$cache/test.safetensors" \
		--out "$models/digits_$m.vmodel" --sample-input "$models/digits_$m.input"
done
