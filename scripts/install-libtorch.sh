#!/usr/bin/env bash
# Installs libtorch 2.13.0 (the version tch 0.26 binds) for the inference worker, from PyPI
# wheels only (no other download), into a cache directory outside the clone:
#
#   ${VERITY_CACHE:-$HOME/.cache/verity}/libtorch-2.13.0/{include,lib}
#
# lib/ holds exactly what links with tch 0.26 and runs on CPU: libtorch_cpu.so, libtorch.so,
# libc10.so and libgomp.so.1 from the torch wheel, libcudart.so.13 and libcupti.so.13 from the
# cuda-toolkit[cudart,cupti] wheels. pip checks every wheel against the sha256 pinned below
# (--require-hashes). Idempotent: a complete installation (marked by a stamp file holding the
# pinned hashes) is reused at once; an incomplete or outdated one is rebuilt.
#
# Prints the directory on the last line of stdout (`LIBTORCH=$(bash scripts/install-libtorch.sh
# | tail -n1)`). If LIBTORCH is already set to a directory with lib/libtorch_cpu.so, or
# LIBTORCH_USE_PYTORCH=1 (a full PyTorch install, e.g. with CUDA), nothing is installed.
set -euo pipefail

say() { echo "install-libtorch: $*" >&2; }

version=2.13.0
cache="${VERITY_CACHE:-$HOME/.cache/verity}"
dest="$cache/libtorch-$version"

if [ "${LIBTORCH_USE_PYTORCH:-0}" = 1 ]; then
	say "LIBTORCH_USE_PYTORCH=1: using the Python torch install"
	echo ""
	exit 0
fi
if [ -n "${LIBTORCH:-}" ] && [ "${LIBTORCH%/}" != "$dest" ] && [ -e "$LIBTORCH/lib/libtorch_cpu.so" ]; then
	say "using LIBTORCH=$LIBTORCH"
	echo "$LIBTORCH"
	exit 0
fi

# The wheels, pinned by hash. The torch wheel is the CPython 3.11 manylinux_2_28 x86_64 one;
# only its C++ libraries and headers are used, so the Python version does not matter.
torch_requirement="torch==$version --hash=sha256:60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"
cuda_requirements="cuda-toolkit==13.0.3 --hash=sha256:d693caaa261214ddd7dbb60d68e71cbed884e68c2be7509778f3051da0b91c3f
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cupti==13.0.85 --hash=sha256:4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"
stamp_want="$(printf '%s\n' "$torch_requirement" "$cuda_requirements" | sha256sum | cut -d' ' -f1)"
libs=(libtorch_cpu.so libtorch.so libc10.so libgomp.so.1 libcudart.so.13 libcupti.so.13)

complete() {
	[ "$(cat "$dest/.verity-libtorch" 2>/dev/null)" = "$stamp_want" ] || return 1
	[ -e "$dest/include/torch/csrc/api/include/torch/torch.h" ] || return 1
	for l in "${libs[@]}"; do [ -e "$dest/lib/$l" ] || return 1; done
}

if complete; then
	echo "$dest"
	exit 0
fi

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*)
	say "no pinned libtorch wheel for $(uname -s)-$(uname -m); install PyTorch $version and set" \
		"LIBTORCH_USE_PYTORCH=1, or set LIBTORCH to a libtorch $version directory"
	exit 1
	;;
esac
command -v python3 >/dev/null || { say "python3 is required"; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || { say "pip is required (python3 -m pip)"; exit 1; }

say "installing libtorch $version into $dest (one download of about 540 MB)"
mkdir -p "$cache"
work="$(mktemp -d "$cache/.libtorch-work-XXXXXX")"
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$torch_requirement" > "$work/torch.txt"
printf '%s\n' "$cuda_requirements" > "$work/cuda.txt"
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
	--platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
	-r "$work/torch.txt" -d "$work/wheels"
# py3-none-manylinux wheels: installable on any Linux x86_64 Python.
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
	-r "$work/cuda.txt" -d "$work/wheels"

python3 - "$work/wheels" "$work/libtorch" <<'EOF'
import os, shutil, sys, zipfile
wheels, out = sys.argv[1], sys.argv[2]
wanted = {
	"torch/lib/libtorch_cpu.so", "torch/lib/libtorch.so", "torch/lib/libc10.so",
	"torch/lib/libgomp.so.1", "nvidia/cu13/lib/libcudart.so.13", "nvidia/cu13/lib/libcupti.so.13",
}
found = set()
os.makedirs(os.path.join(out, "lib"))
for name in sorted(os.listdir(wheels)):
	with zipfile.ZipFile(os.path.join(wheels, name)) as z:
		for info in z.infolist():
			n = info.filename
			if n.endswith("/"):
				continue
			if n.startswith("torch/include/"):
				target = os.path.join(out, n[len("torch/"):])
			elif n in wanted:
				target = os.path.join(out, "lib", os.path.basename(n))
				found.add(n)
			else:
				continue
			os.makedirs(os.path.dirname(target), exist_ok=True)
			with z.open(info) as src, open(target, "wb") as dst:
				shutil.copyfileobj(src, dst)
			if "/lib/" in n:
				os.chmod(target, 0o755)
missing = wanted - found
if missing:
	sys.exit("install-libtorch: missing in the wheels: " + ", ".join(sorted(missing)))
EOF
echo "$version" > "$work/libtorch/build-version"
echo "$stamp_want" > "$work/libtorch/.verity-libtorch"
rm -rf "$dest"
mv "$work/libtorch" "$dest"
say "ok: $dest"
echo "$dest"
