#!/usr/bin/env bash
# `make testnet`: a five-node Verity network on loopback, from the generated chain spec
# chain-spec/testnet-raw.json (runtime preset `testnet`):
#
#   alice, bob, charlie   validators (Aura + GRANDPA; `--alice` etc. put their session keys in)
#   dave                  the operator: no validator; its keystore holds Dave's `vrty` key (inserted
#                         with `verity-node key insert`), its own `verity-worker serve` executes the
#                         jobs assigned to Dave (bonded at genesis, serves the example models)
#   eve                   the watcher: `--watcher`, Eve's `vrty` key, its own `verity-worker serve`
#
# Each node has a fixed network key (so the others can name Alice as bootnode) and its own base
# path under $VERITY_TESTNET_DIR, which is wiped at start: every run is a fresh chain. Logs go to
# $VERITY_TESTNET_DIR/logs/<name>.log. Ctrl-C or SIGTERM stops every process; so does the exit of
# any one of them (the script then exits non-zero).
#
# Settings (environment):
#   VERITY_CACHE                 cache directory (default ~/.cache/verity)
#   VERITY_TESTNET_DIR           base paths, model stores and logs (default $VERITY_CACHE/testnet)
#   VERITY_TESTNET_SPEC          the raw chain spec (default chain-spec/testnet-raw.json)
#   VERITY_TESTNET_RPC_PORTS     JSON-RPC ports of alice bob charlie dave eve (default 9944..9948)
#   VERITY_TESTNET_P2P_PORTS     p2p ports, same order (default 30333..30337)
#   VERITY_TESTNET_WORKER_PORTS  the inference workers of dave and eve (default 9955 9956)
#   VERITY_WORKER_WAIT_S         how long to wait for a worker's health answer (default 60)
#   VERITY_WORKER_BIN            the worker binary (default target/release/verity-worker)
#   VERITY_NODE_BIN              the node binary (default target/release/verity-node)
# Extra arguments are passed to every node (e.g. `-l verity::agent=debug`).
set -euo pipefail
cd "$(dirname "$0")/.."

script_name=testnet.sh
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

cache="${VERITY_CACHE:-$HOME/.cache/verity}"
dir="${VERITY_TESTNET_DIR:-$cache/testnet}"
spec="${VERITY_TESTNET_SPEC:-chain-spec/testnet-raw.json}"
read -r -a rpc_ports <<<"${VERITY_TESTNET_RPC_PORTS:-9944 9945 9946 9947 9948}"
read -r -a p2p_ports <<<"${VERITY_TESTNET_P2P_PORTS:-30333 30334 30335 30336 30337}"
read -r -a worker_ports <<<"${VERITY_TESTNET_WORKER_PORTS:-9955 9956}"
wait_s="${VERITY_WORKER_WAIT_S:-60}"
worker_bin="${VERITY_WORKER_BIN:-target/release/verity-worker}"
node_bin="${VERITY_NODE_BIN:-target/release/verity-node}"

names=(alice bob charlie dave eve)
[ ${#rpc_ports[@]} -eq 5 ] || die "VERITY_TESTNET_RPC_PORTS needs 5 ports (alice bob charlie dave eve)"
[ ${#p2p_ports[@]} -eq 5 ] || die "VERITY_TESTNET_P2P_PORTS needs 5 ports (alice bob charlie dave eve)"
[ ${#worker_ports[@]} -eq 2 ] || die "VERITY_TESTNET_WORKER_PORTS needs 2 ports (dave eve)"
command -v curl >/dev/null || die "curl is needed (to ask the workers for their health)"
[ -x "$worker_bin" ] || die "$worker_bin not found: run \`make build\` first"
[ -x "$node_bin" ] || command -v "$node_bin" >/dev/null || die "$node_bin not found: run \`make build\` first"
[ -f "$spec" ] || die "$spec not found: run \`make chain-spec\` first"
spec="$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"

# Every process we start: pids[i] is named pnames[i].
pids=()
pnames=()
track() {
	pids+=("$1")
	pnames+=("$2")
}

cleanup() {
	local status=$?
	# Finish the clean-up even if another Ctrl-C comes (bounded: SIGKILL after 15 s).
	trap '' INT TERM HUP
	trap - EXIT
	local -a args=()
	local i
	# Nodes first (they call the workers), then the workers.
	for i in "${!pids[@]}"; do
		case "${pnames[$i]}" in verity-node*) args+=("${pids[$i]}" "${pnames[$i]}") ;; esac
	done
	stop_all "${args[@]}"
	args=()
	for i in "${!pids[@]}"; do
		case "${pnames[$i]}" in verity-node*) ;; *) args+=("${pids[$i]}" "${pnames[$i]}") ;; esac
	done
	# A job started just before a signal arrived, whose pid was not recorded yet.
	local pid
	for pid in $(jobs -p); do args+=("$pid" "background job"); done
	stop_all "${args[@]}"
	# Reap them (no zombies, exit statuses collected).
	wait 2>/dev/null || true
	say "stopped (logs: $dir/logs)"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A fresh chain: base paths, keys and model stores from scratch; older logs go too.
rm -rf "$dir"
mkdir -p "$dir/logs" "$dir/keys"
dir="$(cd "$dir" && pwd)"

# Fixed network keys 0x..01 to 0x..05 (test keys only: never reuse them on a real network).
peer_id=()
for i in "${!names[@]}"; do
	printf '%064x' $((i + 1)) >"$dir/keys/${names[$i]}.key"
	peer_id[i]="$("$node_bin" key inspect-node-key --file "$dir/keys/${names[$i]}.key")"
done
bootnode="/ip4/127.0.0.1/tcp/${p2p_ports[0]}/p2p/${peer_id[0]}"

# The operator's and the watcher's `vrty` keys, in their keystores before the nodes start.
"$node_bin" key insert --base-path "$dir/dave" --chain "$spec" \
	--key-type vrty --scheme sr25519 --suri //Dave
"$node_bin" key insert --base-path "$dir/eve" --chain "$spec" \
	--key-type vrty --scheme sr25519 --suri //Eve
say "inserted the vrty keys of Dave (operator) and Eve (watcher)"

# The inference workers of Dave and Eve, each with its own model store.
workers=(dave eve)
worker_url=()
for i in 0 1; do
	w="${workers[$i]}"
	add_example_models "$worker_bin" "$dir/$w-models"
	start_worker "$worker_bin" "127.0.0.1:${worker_ports[$i]}" "$dir/$w-models" "$dir/logs/$w-worker.log"
	track "$started_pid" "verity-worker ($w)"
	worker_url[i]="http://127.0.0.1:${worker_ports[$i]}"
done
for i in 0 1; do
	# pids[0] and pids[1] are the two workers, in this order.
	wait_worker "${pids[$i]}" "${worker_url[$i]}" "$dir/logs/${workers[$i]}-worker.log" "$wait_s"
done
say "inference workers are up"

# The nodes.
start_node() {
	local i="$1"
	shift
	local name="${names[$i]}"
	"$node_bin" --chain "$spec" --name "$name" --base-path "$dir/$name" \
		--node-key-file "$dir/keys/$name.key" \
		--listen-addr "/ip4/127.0.0.1/tcp/${p2p_ports[$i]}" \
		--rpc-port "${rpc_ports[$i]}" --rpc-cors all \
		--no-prometheus --no-telemetry --no-mdns \
		"$@" >"$dir/logs/$name.log" 2>&1 &
	track $! "verity-node ($name)"
}
start_node 0 --validator --alice "${@}"
start_node 1 --validator --bob --bootnodes "$bootnode" "${@}"
start_node 2 --validator --charlie --bootnodes "$bootnode" "${@}"
start_node 3 --bootnodes "$bootnode" --inference-worker "${worker_url[0]}" "${@}"
start_node 4 --bootnodes "$bootnode" --watcher --inference-worker "${worker_url[1]}" "${@}"

say "Verity testnet ($spec) is starting; base paths and logs under $dir"
{
	printf '  %-8s %-28s %-6s %s\n' node role rpc log
	printf '  %-8s %-28s %-6s %s\n' alice validator "${rpc_ports[0]}" "$dir/logs/alice.log"
	printf '  %-8s %-28s %-6s %s\n' bob validator "${rpc_ports[1]}" "$dir/logs/bob.log"
	printf '  %-8s %-28s %-6s %s\n' charlie validator "${rpc_ports[2]}" "$dir/logs/charlie.log"
	printf '  %-8s %-28s %-6s %s\n' dave "operator (worker :${worker_ports[0]})" "${rpc_ports[3]}" "$dir/logs/dave.log"
	printf '  %-8s %-28s %-6s %s\n' eve "watcher (worker :${worker_ports[1]})" "${rpc_ports[4]}" "$dir/logs/eve.log"
	echo "  polkadot.js: new WsProvider('ws://127.0.0.1:${rpc_ports[0]}'); Ctrl-C stops all"
} >&2

# The first process to exit stops all the others (EXIT trap); the script then fails.
status=0
wait -n "${pids[@]}" || status=$?
for i in "${!pids[@]}"; do
	if ! kill -0 "${pids[$i]}" 2>/dev/null; then
		say "${pnames[$i]} exited (status $status); stopping the network"
		case "${pnames[$i]}" in
		verity-node*) log="$dir/logs/$(echo "${pnames[$i]}" | sed 's/.*(\(.*\))/\1/').log" ;;
		*) log="$dir/logs/$(echo "${pnames[$i]}" | sed 's/.*(\(.*\))/\1/')-worker.log" ;;
		esac
		say "last lines of $log:"
		tail -n 20 "$log" >&2 || true
	fi
done
[ "$status" -ne 0 ] || status=1
exit "$status"
