#!/usr/bin/env python3
"""Step-by-step logit comparison of llama.cpp and Sputnik along llama.cpp's greedy path.

  bench/compare-logits.py LLAMA.json LLAMA.bin SPUTNIK.bin [--steps] [--json]

LLAMA.json / LLAMA.bin: bench/llamacpp-greedy.cpp's output and its GREEDY_LOGITS file; SPUTNIK.bin: the bench
helper's `logits` mode fed the same JSON (teacher forcing on llama.cpp's tokens). Prints, over the steps both
files hold: the largest and the RMS logit difference, llama.cpp's logit spread (standard deviation over the
vocabulary, the scale the differences compare with), how many steps pick the same argmax, and each step where
they do not, with both engines' top-2 gaps. --steps prints every step; --json prints one JSON object instead
(steps, same, max, rms) for bench/check-llamacpp.sh.
"""
import json
import math
import sys
from array import array


def load(path):
    data = array("f")
    with open(path, "rb") as f:
        data.frombytes(f.read())
    return data


def top2(row):
    best = max(range(len(row)), key=row.__getitem__)
    second = max((i for i in range(len(row)) if i != best), key=row.__getitem__)
    return best, row[best] - row[second]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    every = "--steps" in sys.argv
    as_json = "--json" in sys.argv
    meta = json.load(open(args[0]))
    llama, sp = load(args[1]), load(args[2])
    steps_sp = len(meta["tokens"]) + 1
    n_vocab = len(sp) // steps_sp
    steps = min(len(llama), len(sp)) // n_vocab
    worst = sq = 0.0
    spread = 0.0
    same = 0
    parts = []
    for s in range(steps):
        a = llama[s * n_vocab:(s + 1) * n_vocab]
        b = sp[s * n_vocab:(s + 1) * n_vocab]
        d = [x - y for x, y in zip(a, b)]
        m = max(abs(x) for x in d)
        worst = max(worst, m)
        sq += sum(x * x for x in d) / n_vocab
        mean = sum(a) / n_vocab
        spread += math.sqrt(sum((x - mean) ** 2 for x in a) / n_vocab)
        ba, ga = top2(a)
        bb, gb = top2(b)
        same += ba == bb
        if ba != bb:
            parts.append((s, ga, gb, a[ba] - a[bb], b[bb] - b[ba]))
        if every and not as_json:
            print(f"step {s}: max|d| {m:.3g}, llama top {ba} gap {ga:.3g}, sputnik top {bb} gap {gb:.3g}")
    if as_json:
        print(json.dumps({"steps": steps, "same": same, "max": worst, "rms": math.sqrt(sq / steps) if steps else 0.0}))
        return
    print(f"{steps} steps, vocab {n_vocab}: max |dlogit| {worst:.3g}, rms {math.sqrt(sq / steps):.3g}, "
          f"llama.cpp logit spread (sd) {spread / steps:.3g}; same argmax {same}/{steps}")
    for s, ga, gb, da, db in parts:
        print(f"  step {s}: llama.cpp's pick leads by {da:.3g} there (its top-2 gap {ga:.3g}); Sputnik's pick leads by {db:.3g} in Sputnik")


if __name__ == "__main__":
    main()
