#!/usr/bin/env bash
# Generate the Verity pallets' weights.rs by running their benchmarks in the runtime's wasm.
#   bash scripts/benchmark.sh [pallet ...]     (default: all four; e.g. pallet_verity_jobs)
# Builds verity-node with `--features runtime-benchmarks` into the shared target directory
# (the node binary is copied to target/release/verity-node-bench, then the normal node is
# relinked by the next `make build`). STEPS / REPEAT override the sampling.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
libtorch="$(bash scripts/install-libtorch.sh | tail -n1)"
if [ -n "$libtorch" ]; then export LIBTORCH="$libtorch"; fi
# frame-benchmarking-cli's storage benchmark runtime fails to build outside its workspace;
# `benchmark pallet` does not need it.
SKIP_FRAME_STORAGE_ACCESS_TEST_RUNTIME_WASM_BUILD=1 \
	cargo build --release --locked -p verity-node --features runtime-benchmarks
cp target/release/verity-node target/release/verity-node-bench
pallets=("$@")
if [ ${#pallets[@]} -eq 0 ]; then
	pallets=(pallet_verity_models pallet_verity_operators pallet_verity_jobs pallet_verity_disputes)
fi
for p in "${pallets[@]}"; do
	dir="pallets/${p#pallet_verity_}"
	echo "=== $p -> $dir/src/weights.rs"
	target/release/verity-node-bench benchmark pallet --chain dev --pallet "$p" --extrinsic '*' \
		--steps "${STEPS:-20}" --repeat "${REPEAT:-10}" --wasm-execution compiled \
		--heap-pages 4096 --output-analysis max --template scripts/benchmark/weights.hbs --output "$dir/src/weights.rs"
done
