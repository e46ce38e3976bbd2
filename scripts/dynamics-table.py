#!/usr/bin/env python3
"""The table of docs/results.md ("Training dynamics at a fixed budget") for one
data set, from the files scripts/compare-dynamics.sh wrote:

    python3 scripts/dynamics-table.py docs/runs/dynamics/DATASET
"""
import json
import os
import sys

STARTS = [
    ("base", "base: the paper's normaliser, c⁰ = 0"),
    ("stable", "stable filterbank rows"),
    ("canvas", "stable, and c⁰ learned from the data's mean"),
    ("forget", "stable, and forget-gate bias 1"),
]


def seed(out, name, s):
    with open(os.path.join(out, f"{name}-seed{s}.json")) as f:
        report = json.load(f)
    with open(os.path.join(out, f"{name}-seed{s}.metrics.jsonl")) as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    at200 = next(m["loss"] for m in metrics if m["step"] == 200)
    dead = max(metrics[-1]["windows"]["read"]["dead_rows"])
    return report["test"]["nll"], report["test"]["kl"], at200, dead


def main(out):
    print("| start | test NLL at the last step, seed 1 / 2 (all 2,000 test videos) | mean "
          "| KL (1 / 2) | training loss at step 200 (1 / 2) "
          "| dead read rows at the last step (worst frame, 1 / 2) |")
    print("|---|---|---|---|---|---|")
    for name, label in STARTS:
        a, b = seed(out, name, 1), seed(out, name, 2)
        print(f"| {label} | {a[0]:,.1f} / {b[0]:,.1f} | {(a[0] + b[0]) / 2:,.1f} "
              f"| {a[1]:.1f} / {b[1]:.1f} | {a[2]:,.0f} / {b[2]:,.0f} "
              f"| {a[3]:.2f} / {b[3]:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
