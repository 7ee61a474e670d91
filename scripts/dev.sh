#!/usr/bin/env bash
# `make dev`: a dev chain with its inference worker. Starts `verity-worker serve` (model store
# with the example models) in the background, waits until it answers `health`, then runs
# `verity-node --dev --inference-worker http://<worker>` with the given arguments. Ctrl-C,
# SIGTERM, or the exit of either process stops both: no worker is left behind.
#
# Settings (environment):
#   VERITY_CACHE          cache directory (default ~/.cache/verity)
#   VERITY_DEV_MODELS     the worker's model store (default $VERITY_CACHE/dev-models)
#   VERITY_WORKER_LISTEN  the worker's listen address (default 127.0.0.1:9955)
#   VERITY_WORKER_LOG     the worker's log file (default $VERITY_CACHE/dev-worker.log)
#   VERITY_WORKER_WAIT_S  how long to wait for the worker's health answer (default 60)
#   VERITY_WORKER_BIN     the worker binary (default target/release/verity-worker)
#   VERITY_NODE_BIN       the node binary (default target/release/verity-node)
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${VERITY_CACHE:-$HOME/.cache/verity}"
models_dir="${VERITY_DEV_MODELS:-$cache/dev-models}"
listen="${VERITY_WORKER_LISTEN:-127.0.0.1:9955}"
worker_log="${VERITY_WORKER_LOG:-$cache/dev-worker.log}"
wait_s="${VERITY_WORKER_WAIT_S:-60}"
worker_bin="${VERITY_WORKER_BIN:-target/release/verity-worker}"
node_bin="${VERITY_NODE_BIN:-target/release/verity-node}"
worker_url="http://$listen"

say() { echo "dev.sh: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

command -v curl >/dev/null || die "curl is needed (to ask the worker for its health)"
[ -x "$worker_bin" ] || die "$worker_bin not found: run \`make build\` first"
[ -x "$node_bin" ] || command -v "$node_bin" >/dev/null || die "$node_bin not found: run \`make build\` first"

worker_pid=""
node_pid=""

# Stop a process: SIGTERM, a bounded wait, then SIGKILL. (SIGTERM, not SIGINT: a background
# job of a script starts with SIGINT ignored; the node shuts down cleanly on SIGTERM, and the
# worker holds nothing that needs a clean shutdown.)
stop() {
	local pid="$1" name="$2" i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	say "$name (pid $pid) did not stop within 15 s of SIGTERM: killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local status=$?
	# Finish the clean-up even if another Ctrl-C comes (it is bounded: SIGKILL after 15 s).
	trap '' INT TERM HUP
	trap - EXIT
	stop "$node_pid" verity-node
	stop "$worker_pid" verity-worker
	# A job started just before a signal arrived, whose pid was not recorded yet.
	local pid
	for pid in $(jobs -p); do stop "$pid" "background job"; done
	# Reap them (no zombies, exit statuses collected).
	wait 2>/dev/null || true
	[ -z "$worker_pid" ] || say "verity-worker stopped (log: $worker_log)"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# One JSON-RPC `health` call; true if the worker answers with a result.
health() {
	local body='{"jsonrpc":"2.0","id":1,"method":"health","params":[]}'
	curl -fsS -m 2 -H 'Content-Type: application/json' -d "$body" "$worker_url" 2>/dev/null |
		grep -q '"result"'
}

# The model store with the example models (`model add` verifies each file; adding a model that
# is already there rewrites the same file, so this is idempotent).
mkdir -p "$models_dir" "$(dirname "$worker_log")"
say "model store $models_dir"
"$worker_bin" model add --models "$models_dir" \
	inference-worker/models/digits_cnn.vmodel \
	inference-worker/models/digits_mlp.vmodel \
	primitives/testdata/cnn.vmodel \
	primitives/testdata/mlp.vmodel >&2

# The worker, in the background (the node calls it over HTTP).
if health; then
	die "something already answers health on $worker_url (a worker left running?); stop it or set VERITY_WORKER_LISTEN"
fi
"$worker_bin" serve --listen "$listen" --models "$models_dir" >"$worker_log" 2>&1 &
worker_pid=$!
say "verity-worker (pid $worker_pid) on $worker_url, log: $worker_log"

deadline=$((SECONDS + wait_s))
until health; do
	if ! kill -0 "$worker_pid" 2>/dev/null; then
		wait "$worker_pid" && code=0 || code=$?
		worker_pid=""
		say "verity-worker exited (status $code) before answering health; last lines of $worker_log:"
		tail -n 20 "$worker_log" >&2 || true
		die "the inference worker did not start (is $listen already in use?)"
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		say "last lines of $worker_log:"
		tail -n 20 "$worker_log" >&2 || true
		die "verity-worker did not answer health on $worker_url within ${wait_s} s"
	fi
	sleep 0.2
done
say "verity-worker is up"

# The node. It runs as a background job so that the script can watch both processes, but its
# output goes to this terminal as usual; Ctrl-C reaches this script, which stops both.
say "starting $node_bin --dev --inference-worker $worker_url $*"
"$node_bin" --dev --inference-worker "$worker_url" "$@" &
node_pid=$!

# Whichever exits first, the other is stopped (by the EXIT trap).
status=0
wait -n "$node_pid" "$worker_pid" || status=$?
if ! kill -0 "$node_pid" 2>/dev/null; then
	say "verity-node exited (status $status); stopping the inference worker"
	node_pid=""
else
	say "verity-worker exited (status $status); stopping the node. Last lines of $worker_log:"
	tail -n 20 "$worker_log" >&2 || true
	worker_pid=""
	[ "$status" -ne 0 ] || status=1
fi
exit "$status"
