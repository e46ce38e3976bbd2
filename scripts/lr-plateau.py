#!/usr/bin/env python3
"""Says whether a convergence cell's learning rate should come down a step.

    python3 scripts/lr-plateau.py RUN_DIR PLATEAU_PCT RATE...

RATE... is the ladder, highest first (e.g. 1e-3 3e-4 1e-4). The present rate is
the one RUN_DIR/checkpoint.safetensors records (1e-3, the training default,
where it records none). The chunks trained at that rate are the test NLLs of
RUN_DIR/metrics.jsonl from the last change in RUN_DIR/lr.log on (the NLL at the
change itself is their starting point). When there are at least three and the
last is less than PLATEAU_PCT % below the one two chunks before it, prints the
next rate of the ladder; otherwise prints nothing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
meta = __import__("checkpoint-meta").meta


def next_rate(run, pct, ladder):
    lr = meta(os.path.join(run, "checkpoint.safetensors")).get("lr", 1e-3)
    lower = [r for r in ladder if r < lr * 0.999]
    if not lower:
        return None
    since = 0
    log = os.path.join(run, "lr.log")
    if os.path.exists(log):
        with open(log) as f:
            lines = [line.split() for line in f if line.strip()]
        if lines:
            since = int(lines[-1][0])
    nll = {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if m.get("test_nll") is not None and m["step"] >= since:
                nll[m["step"]] = m["test_nll"]  # a re-run chunk's evaluation wins
    curve = [nll[s] for s in sorted(nll)]
    if len(curve) < 3:
        return None
    gain = (curve[-3] - curve[-1]) / curve[-3]
    return lower[0] if gain < pct / 100 else None


if __name__ == "__main__":
    rate = next_rate(sys.argv[1], float(sys.argv[2]), [float(r) for r in sys.argv[3:]])
    if rate is not None:
        print(f"{rate:g}")
