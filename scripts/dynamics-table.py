#!/usr/bin/env python3
"""The tables of docs/results.md ("Training dynamics at a fixed budget", "Adam's
settings at a fixed budget", "Batch size at a fixed number of videos") for one
data set, from the files scripts/compare-dynamics.sh wrote (the comparison is
told by the files there):

    python3 scripts/dynamics-table.py docs/runs/dynamics/DATASET
    python3 scripts/dynamics-table.py docs/runs/optimizer/DATASET-PIXELS
    python3 scripts/dynamics-table.py docs/runs/batch/DATASET-PIXELS
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

OPTIMIZERS = [
    ("paper", "the paper's code: lr 1e-3, beta1 0.5, clip 10"),
    ("beta09", "beta1 0.9"),
    ("noclip", "no clipping"),
    ("lr2e-3", "lr 2e-3"),
]

BATCHES = [
    ("b64", "batch 64, lr 1e-3"),
    ("b128", "batch 128, lr 1e-3"),
    ("b128-lr", "batch 128, lr 1.41e-3"),
]

# An arm's batch size where it is not 64 (compare-dynamics.sh's `batch`).
BATCH = {"b128": 128, "b128-lr": 128}


def seed(out, name, s):
    with open(os.path.join(out, f"{name}-seed{s}.json")) as f:
        report = json.load(f)
    with open(os.path.join(out, f"{name}-seed{s}.metrics.jsonl")) as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    # The training loss after 12,800 videos (step 200 at batch 64).
    at200 = next(m["loss"] for m in metrics if m["step"] == 200 * 64 // BATCH.get(name, 64))
    dead = max(metrics[-1]["windows"]["read"]["dead_rows"])
    return report["test"]["nll"], report["test"]["kl"], at200, dead


def seeds_of(out, name):
    """The seeds run for an arm: 1 and 2, and any more the directory holds."""
    found = [s for s in range(1, 10) if os.path.exists(os.path.join(out, f"{name}-seed{s}.json"))]
    return found


def main(out):
    if os.path.exists(os.path.join(out, "b64-seed1.json")):
        arms, kind = BATCHES, "batch"
    elif os.path.exists(os.path.join(out, "paper-seed1.json")):
        arms, kind = OPTIMIZERS, "Adam"
    else:
        arms, kind = STARTS, "start"
    most = max(len(seeds_of(out, name)) for name, _ in arms)
    which = " / ".join(str(s) for s in range(1, most + 1)) + (" (where run)" if most > 2 else "")
    print(f"| {kind} | test NLL at the last step, seed {which} "
          "(all 2,000 test videos) | mean "
          "| KL | training loss after 12,800 videos (step 200 at batch 64) "
          "| dead read rows at the last step (worst frame) |")
    print("|---|---|---|---|---|---|")
    for name, label in arms:
        rows = [seed(out, name, s) for s in seeds_of(out, name)]
        if not rows:  # an arm not run on this data set
            continue
        col = lambda i, fmt: " / ".join(format(r[i], fmt) for r in rows)
        mean = sum(r[0] for r in rows) / len(rows)
        print(f"| {label} | {col(0, ',.1f')} | {mean:,.1f} | {col(1, '.1f')} | {col(2, ',.0f')} "
              f"| {col(3, '.2f')} |")


if __name__ == "__main__":
    main(sys.argv[1])
