#!/usr/bin/env python3
"""Exact decode against llama.cpp's, alternated (docs/PERFORMANCE.md): on a machine whose speed
swings by tens of percent between minutes, two tables run minutes apart can put the ratio on
either side of a goal. This runs one configuration of each at a time, in turn — the exact
backend with hashing (`lm_speed MODEL.vlm TEXT C T 1`) then llama.cpp on the same GGUF and the
same prompt tokens (`bench-llamacpp.py MODEL.gguf C T 1`, the faster of its two memory set-ups)
— for contexts 128 and 1,024 and 1 and 2 threads, ROUNDS times, and prints each round's decode
tokens/s and their ratio, then the median ratio with its range per configuration. Each round
also runs the reference interpreter once at context 128 (`lm_speed ... 128 1 1 reference`: its
positions/s beside the exact decode of the same process), for the "fast >= 20x the
reference" goal measured the same way.

Usage (after scripts/bench-setup.sh and `make dev`'s model set-up):
  scripts/bench-decode-ratio.py MODEL.vlm MODEL.gguf [ROUNDS]
"""
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.expanduser("~/.cache/verity/bench/venv/bin/python")


def row(output, name):
    """The cells of the table row whose backend column is `name`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[1] == name:
            return cells
    raise SystemExit(f"no '{name}' row in:\n{output}")


def decode_rate(output, name):
    """The decode tok/s of the row of `name` (lm_speed: context, backend, threads, hashing,
    prefill, decode, share; bench-llamacpp: context, backend, threads, prefill, decode)."""
    cells = row(output, name)
    return float(cells[5] if len(cells) == 7 else cells[4])


def reference_rate(output):
    """The reference interpreter's positions/s (its row's prefill cell, `N (positions/s...`)."""
    return float(row(output, "reference")[4].split()[0])


def run(cmd):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main():
    if len(sys.argv) < 3:
        raise SystemExit("usage: bench-decode-ratio.py MODEL.vlm MODEL.gguf [ROUNDS]")
    vlm, gguf = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    if "LIBTORCH" not in os.environ:
        # The libtorch the project installs (scripts/install-libtorch.sh prints its directory;
        # the binaries find its libraries through their rpath).
        printed = subprocess.run(["bash", "scripts/install-libtorch.sh"], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.split()
        if printed:
            os.environ["LIBTORCH"] = printed[-1]
    subprocess.run(["cargo", "build", "--release", "--offline", "-q", "-p", "verity-worker",
                    "--example", "lm_speed"], cwd=ROOT, check=True)
    lm_speed = os.path.join(ROOT, "target/release/examples/lm_speed")
    text = os.path.join(ROOT, "docs/PROTOCOL.md")
    bench = os.path.join(ROOT, "scripts/bench-llamacpp.py")
    configs = [(c, t) for c in (128, 1024) for t in (1, 2)]
    ratios = {cfg: [] for cfg in configs}
    references = []
    print("| round | context | threads | exact decode tok/s | llama.cpp decode tok/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in range(1, rounds + 1):
        out = run([lm_speed, vlm, text, "128", "1", "1", "reference"])
        ours, ref = decode_rate(out, "fast"), reference_rate(out)
        references.append((ours, ref))
        print(f"| {r} | 128 | 1 | {ours:.1f} | reference {ref:.2f} positions/s | "
              f"{ours / ref:.1f}× the reference |", flush=True)
        for c, t in configs:
            # lm_speed writes the prompt tokens the llama.cpp run reads.
            ours = decode_rate(run([lm_speed, vlm, text, str(c), str(t), "1"]), "fast")
            out = run([VENV_PYTHON, bench, gguf, str(c), str(t), "1"])
            theirs = max(decode_rate(out, "llama.cpp"),
                         decode_rate(out, "llama.cpp, no mmap, huge-page heap"))
            ratios[(c, t)].append(ours / theirs)
            print(f"| {r} | {c} | {t} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |",
                  flush=True)
    print()
    print("| context | threads | median ratio | range |")
    print("|---|---|---|---|")
    for (c, t), rs in ratios.items():
        print(f"| {c} | {t} | {statistics.median(rs):.2f} | {min(rs):.2f}–{max(rs):.2f} |")
    over = [ours / ref for ours, ref in references]
    print(f"\nexact decode (128, one thread) against the reference interpreter in the same "
          f"process: median {statistics.median(over):.1f}×, range {min(over):.1f}–{max(over):.1f}×; "
          f"reference median {statistics.median(ref for _, ref in references):.2f} positions/s")


if __name__ == "__main__":
    main()
