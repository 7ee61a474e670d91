#!/usr/bin/env bash
# Generate the Verity pallets' weights.rs by running their benchmarks in the runtime's wasm.
#   bash scripts/benchmark.sh [pallet ...]     (default: the four pallets and frame_system's
#       transaction extensions; e.g. pallet_verity_jobs or frame_system_extensions)
#   bash scripts/benchmark.sh --interpreter-rate
#       the reference interpreter's multiply-accumulates per second in the runtime's wasm vs
#       natively, side by side: the same `prove_fraud_macs` benchmark at the same two MAC counts,
#       in wasm (this CLI) and natively (pallets/tests, `interpreter_rate_native`).
#   bash scripts/benchmark.sh --lm-steps
#       the in-wasm time of judging the largest transformer steps of SmolLM2-135M at contexts
#       512 to 8192 (`pallet_verity_disputes` `lm_step_*`, decode + `check_step_proof`
#       of a synthetic proof; docs/MODEL_FORMAT.md 12.10).
# Builds verity-node with `--features runtime-benchmarks` into the shared target directory
# (the node binary is copied to target/release/verity-node-bench, then the normal node is
# relinked by the next `make build`), and runs the benchmarks in the runtime wasm that build
# made (`--runtime`, genesis from its `development` preset). STEPS / REPEAT override the
# sampling. VERITY_BENCH_NODE=path: a node already built with `runtime-benchmarks` (skips the
# node build; only the runtime is rebuilt, with `runtime-benchmarks`, which takes minutes
# instead of the node's relink).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
libtorch="$(bash scripts/install-libtorch.sh | tail -n1)"
if [ -n "$libtorch" ]; then export LIBTORCH="$libtorch"; fi
# frame-benchmarking-cli's storage benchmark runtime fails to build outside its workspace;
# `benchmark pallet` does not need it.
bench_node="${VERITY_BENCH_NODE:-target/release/verity-node-bench}"
if [ -z "${VERITY_BENCH_NODE:-}" ]; then
	SKIP_FRAME_STORAGE_ACCESS_TEST_RUNTIME_WASM_BUILD=1 \
		cargo build --release --locked -p verity-node --features runtime-benchmarks
	cp target/release/verity-node "$bench_node"
else
	cargo build --release --locked -p verity-runtime --features runtime-benchmarks
fi
wasm=target/release/wbuild/verity-runtime/verity_runtime.compact.compressed.wasm
runtime=(--runtime "$wasm" --genesis-builder runtime --genesis-builder-preset development)
if [ "${1:-}" = --interpreter-rate ]; then
	low=36864 high=$((28 * 36864)) repeat="${REPEAT:-20}"  # the CLI adds runs until its time budget
	json="$(mktemp -t verity-wasm-rate-XXXXXX.json)"
	"$bench_node" benchmark pallet "${runtime[@]}" --pallet pallet_verity_disputes \
		--extrinsic prove_fraud_macs --steps 2 --low "$low" --high "$high" --repeat "$repeat" \
		--wasm-execution compiled --heap-pages 4096 --json-file "$json" >/dev/null
	python3 - "$json" "$low" "$high" <<'PY'
import json, statistics, sys
path, low, high = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = {}
for r in json.load(open(path))[0]["time_results"]:
    times.setdefault(r["components"][0][1], []).append(r["extrinsic_time"])
for what, f in (("median", statistics.median), ("min", min)):
    lo, hi = f(times[low]), f(times[high])
    slope = (hi - lo) / (high - low)
    print(f"wasm prove_fraud_macs {what}: m={low} {lo:.0f} ns, m={high} {hi:.0f} ns ({len(times[low])} runs);"
          f" slope {slope:.4f} ns/MAC = {1 / slope:.3f} G MAC/s")
PY
	rm -f "$json"
	SKIP_WASM_BUILD=1 cargo test --release --locked -q -p verity-pallets-tests \
		--features runtime-benchmarks interpreter_rate_native -- --ignored --nocapture 2>&1 | grep '^native'
	exit 0
fi
if [ "${1:-}" = --lm-steps ]; then
	json="$(mktemp -t verity-lm-steps-XXXXXX.json)"
	"$bench_node" benchmark pallet "${runtime[@]}" --pallet pallet_verity_disputes \
		--extrinsic lm_step_attn_part,lm_step_attn,lm_step_select,lm_step_head,lm_step_embed,lm_step_down \
		--extra --steps 3 --repeat "${REPEAT:-10}" --wasm-execution compiled --heap-pages 4096 \
		--json-file "$json" >/dev/null
	python3 - "$json" <<'PY'
import json, statistics, sys
data = json.load(open(sys.argv[1]))
cols = sorted({r["components"][0][1] for b in data for r in b["time_results"]})
print(f"{'step (SmolLM2-135M, last position)':36} " + " ".join(f"{'ctx ' + str(512 << c):>16}" for c in cols) + "   (median / min ms in wasm)")
for b in data:
    times = {}
    for r in b["time_results"]:
        times.setdefault(r["components"][0][1], []).append(r["extrinsic_time"] / 1e6)
    cells = [f"{statistics.median(times[c]):7.2f} / {min(times[c]):6.2f}" for c in sorted(times)]
    name = b["benchmark"] if isinstance(b["benchmark"], str) else bytes(b["benchmark"]).decode()
    print(f"{name:36} " + " ".join(f"{x:>16}" for x in cells) + f"   ({len(times[0])} runs each)")
PY
	rm -f "$json"
	exit 0
fi
pallets=("$@")
if [ ${#pallets[@]} -eq 0 ]; then
	pallets=(pallet_verity_models pallet_verity_operators pallet_verity_jobs pallet_verity_disputes frame_system_extensions)
fi
for p in "${pallets[@]}"; do
	case "$p" in
	pallet_verity_*) out="pallets/${p#pallet_verity_}/src/weights.rs" template=weights.hbs ;;
	frame_system_extensions) out="runtime/src/weights/$p.rs" template=extensions.hbs ;;
	*) echo "benchmark.sh: no weights file for $p" >&2; exit 1 ;;
	esac
	echo "=== $p -> $out"
	"$bench_node" benchmark pallet "${runtime[@]}" --pallet "$p" --extrinsic '*' \
		--steps "${STEPS:-20}" --repeat "${REPEAT:-10}" --wasm-execution compiled \
		--heap-pages 4096 --output-analysis max --template "scripts/benchmark/$template" --output "$out"
done
