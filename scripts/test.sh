#!/usr/bin/env bash
# Every test of the project, after set-up and build (`make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# libtorch for verity-worker (installed by setup.sh; this prints its directory at once).
libtorch="$(bash scripts/install-libtorch.sh | tail -n1)"
if [ -n "$libtorch" ]; then export LIBTORCH="$libtorch"; fi

t0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

step "formatting (rustfmt.toml)"
cargo fmt --all --check

step "build (release): node with its runtime wasm, and every workspace crate"
cargo build --release --locked --workspace

step "build (release): the faulty inference worker of the fraud tests (feature fault-injection, test builds only)"
cargo build --release --locked -p verity-worker --features fault-injection --bin verity-worker-faulty

step "inference worker fault injection: wrong from exactly the chosen step, proven by the honest worker"
cargo test --release --locked -p verity-worker --features fault-injection --test fault_injection

step "chain specs from the presets"
bash chain-spec/generate.sh

step "Rust tests (primitives, pallets, agent, runtime presets, inference worker)"
cargo test --release --locked --workspace

step "pallet benchmarks: every benchmark of the four pallets, lowest and highest components, with verify"
SKIP_WASM_BUILD=1 cargo test --release --locked -p verity-pallets-tests --features runtime-benchmarks benchmarks

step "verity-primitives builds for wasm32v1-none without std"
cargo build --release --locked -p verity-primitives --no-default-features --target wasm32v1-none

step "an independent implementation (Python, written from docs/MODEL_FORMAT.md) agrees byte for byte"
python3 primitives/tools/verity_ref.py primitives/testdata
random_models="$(mktemp -d -t verity-random-models-XXXXXX)"
cargo run --release --locked -q -p verity-primitives --features testing --example golden -- random "$random_models" 100
python3 primitives/tools/verity_ref.py "$random_models"
rm -rf "$random_models"

step "no RocksDB in the dependency tree"
if cargo tree --locked -i librocksdb-sys >/dev/null 2>&1; then
	echo "librocksdb-sys is in the dependency tree" >&2; exit 1
fi
echo "librocksdb-sys: absent"

step "docker-compose file is valid"
docker-compose -f docker/docker-compose.yml config -q && echo "docker/docker-compose.yml: valid"

step "end-to-end tests (real verity-node, polkadot.js)"
export VERITY_E2E_LOGS="$(mktemp -d -t verity-e2e-logs-XXXXXX)"
if ! (cd e2e && node --test --test-concurrency=1 tests/); then
	for f in "$VERITY_E2E_LOGS"/*.log; do
		[ -e "$f" ] || continue
		echo "--- last lines of $f"; tail -n 40 "$f"
	done
	exit 1
fi

step "all tests passed"
