#!/usr/bin/env python3
"""llama.cpp against the float model on the windows `lm_accuracy` scored (docs/PERFORMANCE.md):
teacher-forced top-1 agreement with the fp32 model's argmax and perplexity, on the same token
ids, each window from an empty cache. A baseline for the exact model's agreement: llama.cpp
also quantizes activations to 8 bits per block before its Q4_1 products.

Usage: bench-llamacpp-accuracy.py MODEL.gguf DUMP [THREADS]
(DUMP from `VERITY_ACCURACY_DUMP=DUMP cargo run --release -p verity-worker --example
lm_accuracy -- ...`; set up by scripts/bench-setup.sh.)
"""
import math
import sys

import numpy as np
from llama_cpp import Llama


def main():
    gguf, dump = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    windows, floats, exacts = [], [], []
    for line in open(dump):
        kind, _, rest = line.partition(" ")
        values = [int(v) for v in rest.split()]
        {"W": windows, "F": floats, "E": exacts}[kind].append(values)
    llm = Llama(model_path=gguf, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                n_batch=2048, logits_all=True, verbose=False)
    agree = agree_exact = both = scored = 0
    nll = 0.0
    for w, tokens in enumerate(windows):
        llm.reset()
        llm.eval(tokens)
        scores = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
        for i in range(len(tokens) - 1):
            row = scores[i]
            top = int(np.argmax(row))
            m = row.max()
            nll -= row[tokens[i + 1]] - (m + math.log(np.exp(row - m).sum()))
            agree += top == floats[w][i]
            if exacts:
                agree_exact += top == exacts[w][i]
                both += exacts[w][i] == floats[w][i]
            scored += 1
    print(f"tokens scored: {scored} in {len(windows)} windows")
    print(f"llama.cpp perplexity {math.exp(nll / scored):.4f}")
    print(f"llama.cpp top-1 agreement with float: {100 * agree / scored:.2f} % ({agree} of {scored})")
    if exacts:
        print(f"exact top-1 agreement with float: {100 * both / scored:.2f} %; "
              f"llama.cpp with exact: {100 * agree_exact / scored:.2f} %")


if __name__ == "__main__":
    main()
