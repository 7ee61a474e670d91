#!/usr/bin/env python3
"""llama.cpp on the same GGUF as the exact backend (docs/PERFORMANCE.md): prefill and decode
tokens/s at the prompts `lm_speed` wrote (/tmp/lm_speed_prompt_C.txt, the same token ids), 1 and
2 threads, greedy, and the peak memory of the process. `CONTEXT THREADS RUNS` after the model
run one configuration only (to alternate it with the exact backend's runs on a noisy machine).

Each configuration runs twice: as llama.cpp ships (the GGUF mapped from the page cache, 4 KiB
pages) and with the weights read into the heap (`use_mmap=False`) under glibc's huge-page heap
(`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which the script sets by re-executing itself), the
memory the exact backend runs on (inference-worker/src/thp.rs).

Set up by scripts/bench-setup.sh (a venv in ~/.cache/verity/bench with llama-cpp-python built
from source by pip). Usage: bench-llamacpp.py MODEL.gguf
"""
import os
import resource
import sys
import time

TUNABLE = "glibc.malloc.hugetlb=1"
if "glibc.malloc.hugetlb" not in os.environ.get("GLIBC_TUNABLES", ""):
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES"), TUNABLE) if t)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import numpy as np
from llama_cpp import Llama

DECODE = 32
RUNS = 3  # medians of three runs, as lm_speed reports


def main():
    gguf = sys.argv[1]
    contexts, thread_counts, runs = (128, 1024), (1, 2), RUNS
    if len(sys.argv) > 2:
        contexts, thread_counts = (int(sys.argv[2]),), (int(sys.argv[3]),)
        runs = int(sys.argv[4]) if len(sys.argv) > 4 else RUNS
    print("| context | backend | threads | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|")
    for context in contexts:
        try:
            prompt = [int(t) for t in open(f"/tmp/lm_speed_prompt_{context}.txt").read().split()]
        except FileNotFoundError:
            continue
        for threads, mmap in [(t, m) for t in thread_counts for m in (True, False)]:
            llm = Llama(model_path=gguf, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                        n_batch=2048, logits_all=False, verbose=False, use_mmap=mmap)
            # Warm up once (page in the weights).
            llm.eval(prompt[:8])
            prefill, decode = [], []
            for _ in range(runs):
                llm.reset()
                t0 = time.perf_counter()
                llm.eval(prompt[:-1])  # the prompt positions that only fill the cache
                t1 = time.perf_counter()
                token = prompt[-1]
                n = 0
                for _ in range(DECODE):
                    llm.eval([token])
                    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                    n += 1
                t2 = time.perf_counter()
                prefill.append((len(prompt) - 1) / (t1 - t0))
                decode.append(n / (t2 - t1))
            name = "llama.cpp" if mmap else "llama.cpp, no mmap, huge-page heap"
            print(f"| {context} | {name} | {threads} | {sorted(prefill)[runs // 2]:.1f} | "
                  f"{sorted(decode)[runs // 2]:.1f} |")
            del llm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory (the whole process): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
