# Verity: `make dev` starts a dev chain, `make test` runs every test. Both do all set-up first.
.PHONY: setup build dev test chain-spec

NODE := target/release/verity-node

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --release --locked -p verity-node

chain-spec: build
	bash chain-spec/generate.sh

dev: build
	$(NODE) --dev $(ARGS)

test:
	bash scripts/test.sh
