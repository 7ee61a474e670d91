# Shell functions shared by scripts/dev.sh (`make dev`) and scripts/testnet.sh (`make testnet`).
# Source it after setting `script_name` (the prefix of every message); it sets no options and
# starts nothing by itself.

# Messages go to stderr, prefixed with the script's name.
say() { echo "${script_name:-verity}: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# Stop a process: SIGTERM, a bounded wait (15 s), then SIGKILL. (SIGTERM, not SIGINT: a
# background job of a script starts with SIGINT ignored; the node shuts down cleanly on SIGTERM,
# and the worker holds nothing that needs a clean shutdown.)
stop_pid() {
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

# Stop several processes at once: SIGTERM to all of them, then one bounded wait (15 s) for all,
# then SIGKILL to those left. Arguments: pairs of "pid name".
stop_all() {
	local -a pids=() names=()
	local i
	while [ $# -ge 2 ]; do
		if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
			pids+=("$1")
			names+=("$2")
			kill -TERM "$1" 2>/dev/null || true
		fi
		shift 2
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	local left
	for _ in $(seq 1 150); do
		left=0
		for i in "${!pids[@]}"; do
			kill -0 "${pids[$i]}" 2>/dev/null && left=1
		done
		[ "$left" = 1 ] || return 0
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		if kill -0 "${pids[$i]}" 2>/dev/null; then
			say "${names[$i]} (pid ${pids[$i]}) did not stop within 15 s of SIGTERM: killing it"
			kill -KILL "${pids[$i]}" 2>/dev/null || true
		fi
	done
}

# True if an inference worker answers a JSON-RPC `health` call at URL.
worker_health() {
	local url="$1" body='{"jsonrpc":"2.0","id":1,"method":"health","params":[]}'
	curl -fsS -m 2 -H 'Content-Type: application/json' -d "$body" "$url" 2>/dev/null |
		grep -q '"result"'
}

# Put the example models into the model store DIR (`model add` verifies each file; adding a model
# that is already there rewrites the same file, so this is idempotent). Run from the repository root.
add_example_models() {
	local worker_bin="$1" dir="$2"
	mkdir -p "$dir"
	"$worker_bin" model add --models "$dir" \
		inference-worker/models/digits_cnn.vmodel \
		inference-worker/models/digits_mlp.vmodel \
		primitives/testdata/cnn.vmodel \
		primitives/testdata/mlp.vmodel >&2
}

# Import the language models that scripts/install-models.sh put into SRC into DIR, as
# `verity-worker import` writes them (`.vlm`, tokenizer, chat template; deterministic, so the
# same files always give the same model ids): `import_text_models WORKER_BIN SRC DIR`. The small
# glassllm model always, SmolLM2-135M-Instruct when its GGUF is installed. A model imported by
# this worker binary already (its `.vlm` newer than the binary) is kept. Sets `text_models` to
# the `.vlm` paths, each as `NAME=PATH`.
import_text_models() {
	local bin="$1" src="$2" dir="$3" name input out
	mkdir -p "$dir"
	text_models=()
	for name in glassllm-en SmolLM2-135M-Instruct; do
		case "$name" in
		glassllm-en) input="$src/glassllm-en.npz" ;;
		SmolLM2-135M-Instruct) input="$src/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
		esac
		[ -f "$input" ] || continue
		out="$dir/$name"
		if ! [ "$out.vlm" -nt "$bin" ]; then
			say "importing $input (verity-worker import)"
			"$bin" import "$input" --out "$out" >&2 || die "cannot import $input"
		fi
		text_models+=("$name=$out.vlm")
	done
	[ ${#text_models[@]} -gt 0 ] || die "no language model in $src (scripts/install-models.sh installs them)"
}

# Start `verity-worker serve` in the background: `start_worker WORKER_BIN LISTEN MODELS_DIR LOG
# [SERVE_ARGS...]` (e.g. `--text-model PATH`).
# Sets `started_pid` to its pid; the caller records it (for its clean-up) before it calls
# `wait_worker`.
start_worker() {
	local bin="$1" listen="$2" models="$3" log="$4"
	shift 4
	if worker_health "http://$listen"; then
		die "something already answers health on http://$listen (a worker left running?); stop it or choose another address"
	fi
	mkdir -p "$(dirname "$log")"
	"$bin" serve --listen "$listen" --models "$models" "$@" >"$log" 2>&1 &
	started_pid=$!
	say "verity-worker (pid $started_pid) on http://$listen, log: $log"
}

# Wait until the worker PID answers `health` at URL: `wait_worker PID URL LOG WAIT_S`. Dies, with
# the last lines of its log, if it exits or stays silent for WAIT_S seconds.
wait_worker() {
	local pid="$1" url="$2" log="$3" wait_s="$4" code deadline=$((SECONDS + $4))
	until worker_health "$url"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" && code=0 || code=$?
			say "verity-worker exited (status $code) before answering health; last lines of $log:"
			tail -n 20 "$log" >&2 || true
			die "the inference worker did not start (is its address already in use?)"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "last lines of $log:"
			tail -n 20 "$log" >&2 || true
			die "verity-worker did not answer health on $url within ${wait_s} s"
		fi
		sleep 0.2
	done
}
