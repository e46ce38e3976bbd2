#!/usr/bin/env python3
"""Prints test-NLL curves of training runs side by side, as a markdown table.

    python3 scripts/curves.py STEPS LABEL=METRICS[+OFFSET] ...

STEPS is a comma-separated list of step counts (e.g. 1000,2000,8000). Each run
is a metrics.jsonl as `syncdraw-train train` writes it; +OFFSET adds OFFSET to
its steps, for a run continued from the weights of an earlier one whose steps
count from there (e.g. docs/runs/mnist1-uncond-binarized/continued-from-6000/
metrics.jsonl+6000). Several runs may share a label: the later ones fill the
steps the earlier ones lack, so a cell trained in pieces reads as one curve.
A step no run of a label evaluated prints as a dash.
"""
import json
import sys


def evaluations(spec):
    path, _, offset = spec.partition("+")
    shift = int(offset) if offset else 0
    with open(path) as f:
        rows = (json.loads(line) for line in f if line.strip())
        return {row["step"] + shift: row["test_nll"] for row in rows if "test_nll" in row}


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__)
    steps = [int(s) for s in argv[1].split(",")]
    curves = {}
    for arg in argv[2:]:
        label, spec = arg.split("=", 1)
        merged = curves.setdefault(label, {})
        for step, nll in evaluations(spec).items():
            merged.setdefault(step, nll)
    print("| steps | " + " | ".join(f"{s:,}" for s in steps) + " |")
    print("|---|" + "---:|" * len(steps))
    for label, curve in curves.items():
        cells = [f"{curve[s]:,.1f}" if s in curve else "-" for s in steps]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv)
