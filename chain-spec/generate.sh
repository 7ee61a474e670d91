#!/usr/bin/env bash
# Regenerate the dev, local and testnet chain specs (plain and raw) from the runtime's genesis presets.
#   chain-spec/generate.sh [OUT_DIR]        (default: chain-spec/)
# Uses target/release/verity-node (or $VERITY_NODE); `make chain-spec` builds it first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
node="${VERITY_NODE:-$here/../target/release/verity-node}"
out="${1:-$here}"
mkdir -p "$out"
[ -x "$node" ] || { echo "chain-spec: $node not found; run 'make build' first" >&2; exit 1; }
for chain in dev local testnet; do
	"$node" export-chain-spec --chain "$chain" > "$out/$chain.json.tmp"
	mv "$out/$chain.json.tmp" "$out/$chain.json"
	"$node" export-chain-spec --chain "$out/$chain.json" --raw > "$out/$chain-raw.json.tmp"
	mv "$out/$chain-raw.json.tmp" "$out/$chain-raw.json"
	echo "chain-spec: wrote $out/$chain.json and $out/$chain-raw.json"
done
