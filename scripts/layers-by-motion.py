#!/usr/bin/env python3
"""Groups the test videos of a captioned two-digit model on layers by their
captions' two motions, and by whether its layers draw the digits in caption
order, from `syncdraw-train eval --per-video FILE` (docs/results.md, "Layer
targets at a fixed budget"). Then, per motion group, the videos where even the
layers' best order misses by more than MISSED nats (default 1,500, about
three times a typical video's): a layer that misses its digit, or both
layers on one digit, and what those videos add to the mean NLL of all.

    python3 scripts/layers-by-motion.py FILE [MISSED]

Given instead the JSON report of `syncdraw-train fidelity` on the same kind of
model, it prints the fidelity of the captions of each motion group (each
caption's videos pooled).
"""
import json
import sys

from two_digit_captions import same_motion


def motion_kind(caption, where):
    return "same motion" if same_motion(caption, where) else "different motions"


def fidelity(report, path):
    pooled = {}
    for c in report["per_caption"]:
        s = c["score"]
        p = pooled.setdefault(motion_kind(c["caption"], path), {"captions": 0, "videos": 0})
        p["captions"] += 1
        p["videos"] += s["videos"]
        for k in ("exact", "digits", "motion", "count"):
            p[k] = p.get(k, 0.0) + s[k] * s["videos"]
    print(f"{'captions':<18} {'of':>4} {'videos':>7} {'exact':>7} {'digits':>7} {'motion':>7} {'count':>7}")
    for kind, p in sorted(pooled.items()):
        shares = " ".join(f"{p[k] / p['videos']:>7.1%}" for k in ("exact", "digits", "motion", "count"))
        print(f"{kind:<18} {p['captions']:>4} {p['videos']:>7} {shares}")


def main(path, missed):
    text = open(path, encoding="utf-8").read()
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        report = None  # JSON lines
    if isinstance(report, dict) and "per_caption" in report:
        return fidelity(report, path)
    lines = text.splitlines()
    groups = {}
    every = []
    for line in lines:
        v = json.loads(line)
        if "layer_targets" not in v:
            sys.exit(f"{path}: no layer terms (a model on layers named by two caption slots, binarised digits)")
        kind = motion_kind(v["caption"], f"{path}: video {v['video']}")
        order = "other order" if v["layer_targets_best"] < v["layer_targets"] else "caption order"
        groups.setdefault((kind, order), []).append(v)
        every.append((kind, v))
    print(f"{'videos':<18} {'layers':<14} {'count':>6} {'nll':>8} {'recon':>8} {'kl':>8}")
    for (kind, order), vs in sorted(groups.items()):
        mean = lambda k: sum(v[k] for v in vs) / len(vs)
        print(f"{kind:<18} {order:<14} {len(vs):>6} {mean('nll'):>8.1f} {mean('reconstruction'):>8.1f} {mean('kl'):>8.1f}")
    nll = sorted(v["nll"] for _, v in every)
    print(f"\nall {len(nll)} videos: mean NLL {sum(nll) / len(nll):.1f}, median {nll[len(nll) // 2]:.1f}")
    print(f"\nlayers missing a digit (best order above {missed:g} nats)")
    print(f"{'videos':<18} {'of':>6} {'missed':>7} {'their NLL':>10} {'the rest':>9} {'nats of the mean NLL':>21}")
    for kind in sorted({k for k, _ in every}):
        vs = [v for k, v in every if k == kind]
        bad = [v["nll"] for v in vs if v["layer_targets_best"] > missed]
        rest = [v["nll"] for v in vs if v["layer_targets_best"] <= missed]
        avg = lambda xs: sum(xs) / len(xs) if xs else float("nan")
        print(f"{kind:<18} {len(vs):>6} {len(bad):>7} {avg(bad):>10.1f} {avg(rest):>9.1f} {sum(bad) / len(every):>21.1f}")

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) == 3 else 1500.0)
