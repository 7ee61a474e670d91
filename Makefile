# Verity: `make dev` starts a dev chain, `make test` runs every test. Both do all set-up first.
.PHONY: setup build dev testnet test chain-spec

NODE := target/release/verity-node
# libtorch for verity-worker, installed by scripts/setup.sh (scripts/install-libtorch.sh).
VERITY_CACHE ?= $(HOME)/.cache/verity
export LIBTORCH ?= $(VERITY_CACHE)/libtorch-2.13.0

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --release --locked -p verity-node -p verity-worker

chain-spec: build
	bash chain-spec/generate.sh

# The node and its inference worker (scripts/dev.sh): Ctrl-C stops both.
dev: build
	VERITY_NODE_BIN=$(NODE) bash scripts/dev.sh $(ARGS)

# Three validators, an operator and a watcher (each with its worker) on loopback from
# chain-spec/testnet-raw.json (scripts/testnet.sh): Ctrl-C stops them all.
testnet: chain-spec
	VERITY_NODE_BIN=$(NODE) bash scripts/testnet.sh $(ARGS)

test:
	bash scripts/test.sh
