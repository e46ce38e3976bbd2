"""Markdown tables from benches/results.json, for docs/benchmarks.md.

    python3 benches/report.py [benches/results.json]
"""
import json
import sys


def markdown(r):
    out = []
    g = {(x["impl"], x["batch"]): x for x in r["generation"]}
    extra = {(x["impl"], x["batch"]): x["frames_per_s"] for x in r.get("generation_extra", [])}
    batches = sorted({x["batch"] for x in r["generation"]})
    peak = r["peak_gflop_per_s"]["measured_matmul_fp32"]
    out.append("| batch | element frames/s | bare ORT frames/s | eager PyTorch frames/s "
               "| element / ORT | element / PyTorch |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        e, o, p = (g[(i, b)]["frames_per_s"] for i in ("element", "ort", "pytorch"))
        out.append(f"| {b} | {e:.0f} | {o:.0f} | {p:.0f} | {e / o:.2f}x | {e / p:.2f}x |")
    out.append("")
    out.append(f"Achieved GFLOP/s ({r['decoder_gflop_per_video'] * 1e3:.1f} MFLOP per video; "
               f"peak {peak:.0f} GFLOP/s measured):")
    out.append("")
    out.append("| batch | element | bare ORT | eager PyTorch |")
    out.append("|---:|---:|---:|---:|")
    for b in batches:
        cells = []
        for i in ("element", "ort", "pytorch"):
            x = g[(i, b)]
            cells.append(f"{x['gflop_per_s']:.2f} ({100 * x['fraction_of_peak']:.1f}%)")
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    if extra:
        out.append("")
        out.append("Diagnostics (bare ORT variants, frames/s):")
        out.append("")
        impls = sorted({k[0] for k in extra})
        out.append("| batch | " + " | ".join(impls) + " |")
        out.append("|---:|" + "---:|" * len(impls))
        for b in batches:
            out.append(f"| {b} | " + " | ".join(f"{extra.get((i, b), 0):.0f}" for i in impls) + " |")
    out.append("")
    out.append(f"First buffer (NULL -> first buffer, median of fresh processes): "
               f"{r['first_buffer_ms']:.0f} ms (runs {', '.join(f'{t:.0f}' for t in r.get('first_buffer_ms_runs', []))}); "
               f"a whole `gst-launch-1.0 ... num-buffers=1` process: {r.get('gst_launch_one_buffer_wall_ms', 0):.0f} ms.")
    if r["training"]:
        out.append("")
        out.append("| training, batch 64 | videos/s |")
        out.append("|---|---:|")
        for t in r["training"]:
            out.append(f"| {t['impl']} ({t['device']}) | {t['videos_per_s']:.2f} |")
        if "tch/pytorch training" in r.get("ratios", {}):
            out.append(f"| tch / PyTorch | {r['ratios']['tch/pytorch training']:.2f}x |")
    return "\n".join(out)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "benches/results.json"
    with open(path) as f:
        print(markdown(json.load(f)))
