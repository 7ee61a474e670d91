#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine with rustup: the Rust toolchain and targets,
# Debian packages (protoc, libssl-dev, docker-compose for the compose-file check, Node.js, python3 + pip),
# libtorch for the inference worker (scripts/install-libtorch.sh), the npm packages of the
# end-to-end suite, of examples/ and of gateway/, and the OpenAI Python client of the gateway's tests. Each step is skipped when what it installs is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }

# --- Rust: the toolchain named in rust-toolchain.toml, with rust-src and the wasm target --------
command -v rustup >/dev/null || { echo "setup: rustup is required (https://rustup.rs)" >&2; exit 1; }
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
if ! rustup toolchain list | grep -q "^$toolchain"; then
	say "installing Rust $toolchain"
	rustup toolchain install "$toolchain" --profile minimal
fi
installed_targets="$(rustup +"$toolchain" target list --installed)"
grep -qx wasm32v1-none <<<"$installed_targets" || rustup +"$toolchain" target add wasm32v1-none
installed_components="$(rustup +"$toolchain" component list --installed)"
for c in rust-src rustfmt clippy; do
	grep -q "^$c" <<<"$installed_components" || rustup +"$toolchain" component add "$c"
done

# --- Debian packages --------------------------------------------------------------------------
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
# VERITY_SETUP_BUILD_ONLY=1 (the Docker build) skips what only the tests need.
build_only="${VERITY_SETUP_BUILD_ONLY:-0}"
if [ "$build_only" != 1 ]; then
	command -v docker-compose >/dev/null || need+=(docker-compose)
	command -v node >/dev/null || need+=(nodejs)
	command -v npm >/dev/null || need+=(npm)
	# Headless Chromium for the gateway's chat-page test (e2e/tests/gateway.test.js).
	command -v chromium >/dev/null || need+=(chromium)
	# python3-venv: the official OpenAI Python client of the gateway's tests, in its own venv.
	python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
fi
command -v cc >/dev/null || need+=(build-essential)
# The node links Debian's OpenSSL rather than building one (.cargo/config.toml).
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3)
# pip downloads the libtorch wheels (scripts/install-libtorch.sh).
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ "${#need[@]}" -gt 0 ]; then
	say "installing Debian packages: ${need[*]}"
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# --- libtorch 2.13.0 for verity-worker (tch 0.26), from PyPI wheels into a cache outside the clone
# (${VERITY_CACHE:-~/.cache/verity}/libtorch-2.13.0; the Makefile and test.sh export LIBTORCH).
bash scripts/install-libtorch.sh >/dev/null

# --- npm packages (polkadot.js) of the end-to-end suite and of the examples ---------------------
if [ "$build_only" = 1 ]; then say "ok (build only)"; exit 0; fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
	echo "setup: the e2e suite needs Node.js >= 20 (found $(node --version)); install a newer nodejs" >&2
	exit 1
fi
# `npm ci` in a directory unless its node_modules were installed from the same package-lock.json
# (a stamp holds the lock file's hash).
npm_packages() {
	local dir="$1" stamp want
	stamp="$dir/node_modules/.verity-lock-sha256"
	want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
	if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
		say "installing $dir npm packages"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
		echo "$want" > "$stamp"
	fi
}
npm_packages e2e
npm_packages examples
npm_packages gateway

# --- the official OpenAI Python client (PyPI `openai`, hash-pinned) for the gateway's tests, in a
# venv of its own outside the clone: $VERITY_CACHE/openai-venv (kept while the requirements match).
venv="${VERITY_CACHE:-$HOME/.cache/verity}/openai-venv"
reqs=gateway/tests/requirements-openai.txt
want="$(sha256sum "$reqs" | cut -d' ' -f1)"
if [ "$(cat "$venv/.verity-reqs-sha256" 2>/dev/null)" != "$want" ]; then
	say "installing the OpenAI Python client into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --only-binary=:all: -r "$reqs"
	echo "$want" > "$venv/.verity-reqs-sha256"
fi
say "ok"
