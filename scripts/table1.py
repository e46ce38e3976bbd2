#!/usr/bin/env python3
"""Prints the paper's Table 1 from the metrics logs of scripts/train-models.sh runs.

    python3 scripts/table1.py RUN_ROOT_OR_DIR [STEP]

RUN_ROOT holds <variant>-<digits>-<captions>/metrics.jsonl (as train-models.sh
writes them) or <cell>.metrics.jsonl files (as docs/runs/table1 keeps them). For
each cell it reports the full-test-split NLL evaluated at STEP (default 2000), or,
for a run that stopped before STEP, its last evaluation, marked with its step.
"""
import json, os, sys

PAPER = {
    "syncdraw": [340.39, 327.11, 639.71, 524.41],
    "global": [500.01, 512.46, 899.06, 860.54],
    "baseline": [3561.23, 3478.26, 5240.65, 5167.94],
}
NAMES = {"syncdraw": "Sync-DRAW", "global": "Global", "baseline": "Baseline"}
COLS = [(1, "false"), (1, "true"), (2, "false"), (2, "true")]


def evals(root, cell):
    for p in (os.path.join(root, cell, "metrics.jsonl"), os.path.join(root, cell + ".metrics.jsonl")):
        if os.path.exists(p):
            with open(p) as f:
                return [(d["step"], d["test_nll"]) for d in map(json.loads, f) if "test_nll" in d]
    return []


def main():
    root = sys.argv[1]
    step = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    print(f"Test NLL bound (nats per video) at step {step}; paper's value in brackets\n")
    print("| | 1 digit | 1 digit + captions | 2 digits | 2 digits + captions |")
    print("|---|---|---|---|---|")
    for v in ("syncdraw", "global", "baseline"):
        cells = []
        for (d, c), paper in zip(COLS, PAPER[v]):
            e = evals(root, f"{v}-{d}-{c}")
            at = [n for s, n in e if s == step]
            if at:
                cells.append(f"{at[0]:.1f} ({paper})")
            elif e:
                s, n = [x for x in e if x[0] <= step][-1] if any(x[0] <= step for x in e) else e[-1]
                cells.append(f"{n:.1f} at step {s} ({paper})")
            else:
                cells.append(f"missing ({paper})")
        print(f"| {NAMES[v]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
