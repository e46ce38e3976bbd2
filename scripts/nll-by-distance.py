#!/usr/bin/env python3
"""Groups a two-digit model's test videos by how close their two digits come,
and prints each group's mean bound, so a reader sees whether the two-digit
models lose where the digits are near each other (where a read window cannot
take one digit without the other) or everywhere (docs/results.md, "Where the
two-digit bound goes: near digits or all").

    python3 scripts/nll-by-distance.py EVAL_PER_VIDEO OVERLAP_PER_VIDEO

EVAL_PER_VIDEO: `syncdraw-train eval --checkpoint W --per-video FILE` (all
2,000 test videos). OVERLAP_PER_VIDEO: `syncdraw-train data --digits 2
--overlap --per-video FILE` (its test split). Videos are matched by index and
checked by caption. Also prints the least-squares fit of the NLL on the
video's ink pixels and its digits' least distance (larger digits cost more
whatever their distance), the groups split by whether both digits have one
motion, and each frame's reconstruction against that frame's distance.
"""
import json
import sys

from two_digit_captions import same_motion

BINS = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 1000)]


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def fit(rows):
    """NLL = a + b ink + c distance by least squares (normal equations)."""
    xs = [(1.0, r["ink_pixels"], r["least_distance"]) for r in rows]
    ys = [r["nll"] for r in rows]
    m = [[sum(x[i] * x[j] for x in xs) for j in range(3)] for i in range(3)]
    v = [sum(x[i] * y for x, y in zip(xs, ys)) for i in range(3)]
    # Gaussian elimination on the 3 x 3 system.
    for i in range(3):
        for k in range(i + 1, 3):
            f = m[k][i] / m[i][i]
            m[k] = [a - f * b for a, b in zip(m[k], m[i])]
            v[k] -= f * v[i]
    coef = [0.0] * 3
    for i in reversed(range(3)):
        coef[i] = (v[i] - sum(m[i][j] * coef[j] for j in range(i + 1, 3))) / m[i][i]
    return coef


def main(eval_path, overlap_path):
    scores, overlaps = lines(eval_path), lines(overlap_path)
    by_index = {o["video"]: o for o in overlaps}
    rows = []
    for s in scores:
        o = by_index.get(s["video"])
        if o is None or o["caption"] != s["caption"]:
            sys.exit(f"video {s['video']}: not the same video in both files (different splits or data?)")
        if o["least_distance"] is None:
            sys.exit(f"video {s['video']}: one digit; this needs two-digit videos")
        rows.append({**o, **s})
    print(f"{'least distance (px)':<20} {'videos':>6} {'covered twice':>13} {'ink':>6} {'nll':>8} {'recon':>8} {'kl':>7} {'nll per ink px':>14}")
    for lo, hi in BINS:
        g = [r for r in rows if lo <= r["least_distance"] < hi]
        if not g:
            continue
        mean = lambda k: sum(r[k] for r in g) / len(g)
        label = f"{lo}-{hi}" if hi < 1000 else f"{lo} or more"
        print(f"{label:<20} {len(g):>6} {mean('pixels_covered_twice'):>13.1f} {mean('ink_pixels'):>6.1f} "
              f"{mean('nll'):>8.1f} {mean('reconstruction'):>8.1f} {mean('kl'):>7.1f} {mean('nll') / mean('ink_pixels'):>14.2f}")
    n = len(rows)
    print(f"all{'':<17} {n:>6} {sum(r['pixels_covered_twice'] for r in rows) / n:>13.1f} "
          f"{sum(r['ink_pixels'] for r in rows) / n:>6.1f} {sum(r['nll'] for r in rows) / n:>8.1f}")
    a, b, c = fit(rows)
    print(f"\nleast squares: nll = {a:.1f} + {b:.3f} x ink pixels + {c:.3f} x least distance (px)")
    by_motion(rows)
    by_frame(rows)


def by_motion(rows):
    """The same groups split by whether the caption gives both digits one
    motion; for a model on layers named by caption slots, also how many of
    the group's videos have their layers in the other order, and how many have
    a layer that misses its digit whatever the order (best order above 1,500
    nats, as scripts/layers-by-motion.py counts them)."""
    layered = "layer_targets" in rows[0]
    extra = f" {'other order':>11} {'a layer misses':>14}" if layered else ""
    print(f"\n{'motions':<18} {'least distance':<15} {'videos':>6} {'nll':>8} {'recon':>8} {'kl':>7}{extra}")
    for kind in ("same", "different"):
        for lo, hi, label in ((0, 10, "under 10"), (10, 20, "10-20"), (20, 1000, "20 or more")):
            g = [r for r in rows if motion_kind(r["caption"]) == kind and lo <= r["least_distance"] < hi]
            if g:
                mean = lambda k: sum(r[k] for r in g) / len(g)
                layers = ""
                if layered:
                    other = sum(r["layer_targets_best"] < r["layer_targets"] for r in g)
                    missed = sum(r["layer_targets_best"] > 1500 for r in g)
                    layers = f" {other:>11} {missed:>14}"
                print(f"{kind:<18} {label:<15} {len(g):>6} {mean('nll'):>8.1f} {mean('reconstruction'):>8.1f} {mean('kl'):>7.1f}{layers}")


def motion_kind(caption):
    return "same" if same_motion(caption, "a test video") else "different"


def by_frame(rows):
    """Whether a video whose digits meet is drawn worse where they meet or in
    every frame: the reconstruction of each frame against that frame's
    distance, and in videos whose digits meet, their near and their far frames."""
    if "reconstruction_per_frame" not in rows[0]:
        return
    frames = [(d, c, r["least_distance"]) for r in rows
              for d, c in zip(r["distances"], r["reconstruction_per_frame"])]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    print(f"\n{'frame distance (px)':<20} {'frames':>6} {'reconstruction of the frame':>28}")
    for lo in range(0, 40, 5):
        hi = lo + 5 if lo < 35 else 1000
        g = [c for d, c, _ in frames if lo <= d < hi]
        if g:
            label = f"{lo}-{hi}" if hi < 1000 else f"{lo} or more"
            print(f"{label:<20} {len(g):>6} {mean(g):>28.1f}")
    near_near = [c for d, c, least in frames if least < 10 and d < 10]
    near_far = [c for d, c, least in frames if least < 10 and d >= 25]
    apart = [c for d, c, least in frames if least >= 25]
    print(f"\nvideos whose digits come within 10 px: frames within 10 px {mean(near_near):.1f} "
          f"({len(near_near)}), frames 25 px or more apart {mean(near_far):.1f} ({len(near_far)})")
    print(f"videos whose digits stay 25 px or more apart: every frame {mean(apart):.1f} ({len(apart)})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
