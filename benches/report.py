"""Markdown tables from benches/results.json, for docs/benchmarks.md.

    python3 benches/report.py [benches/results.json]

Values a run did not measure (a stage that failed, a partial results.json) print
as "not measured".
"""
import json
import os
import sys


def num(v, spec=".0f", suffix=""):
    return "not measured" if v is None else f"{v:{spec}}{suffix}"


def markdown(r):
    out = []
    g = {(x["impl"], x["batch"]): x for x in r.get("generation", [])}
    extra = {(x["impl"], x["batch"]): x["frames_per_s"] for x in r.get("generation_extra", [])}
    batches = sorted({k[1] for k in g})
    peak = r["peak_gflop_per_s"]["measured_matmul_fp32"]
    dev = next((x.get("device", "cpu") for x in r.get("generation", []) if x["impl"] == "element"), "cpu")
    element = "element frames/s" if dev == "cpu" else f"element ({dev}) frames/s"
    if not batches:
        out.append("Generation: not measured.")
    else:
        out.append(f"| batch | {element} | bare ORT frames/s | eager PyTorch frames/s "
                   "| element / ORT | element / PyTorch |")
        out.append("|---:|---:|---:|---:|---:|---:|")
        for b in batches:
            e, o, p = (g[(i, b)]["frames_per_s"] for i in ("element", "ort", "pytorch"))
            out.append(f"| {b} | {e:.0f} | {o:.0f} | {p:.0f} | {e / o:.2f}x | {e / p:.2f}x |")
        if any("frames_per_s_excl_startup" in g[("element", b)] for b in batches):
            out.append("")
            out.append(f"Element with the start-up subtracted (its wall time less a whole one-buffer "
                       f"gst-launch process, {num(r.get('gst_launch_one_buffer_wall_ms'))} ms):")
            out.append("")
            out.append("| batch | element frames/s excl. start-up | element / ORT | element / PyTorch |")
            out.append("|---:|---:|---:|---:|")
            for b in batches:
                e = g[("element", b)].get("frames_per_s_excl_startup")
                o, p = (g[(i, b)]["frames_per_s"] for i in ("ort", "pytorch"))
                out.append(f"| {b} | {num(e)} | {num(None if e is None else e / o, '.2f', 'x')} "
                           f"| {num(None if e is None else e / p, '.2f', 'x')} |")
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
    paired = r.get("ratios_paired") or {}
    if paired:
        out.append("")
        out.append("Ratios within each round (element and the other measured seconds apart), "
                   "and their median:")
        out.append("")
        out.append("| batch | element / ORT, per round | median | element / PyTorch, per round | median |")
        out.append("|---:|---|---:|---|---:|")
        for b in batches:
            cells = []
            for other in ("ort", "pytorch"):
                v = paired.get(f"element/{other}@{b}")
                if v is None:
                    cells += ["not measured", ""]
                else:
                    cells += [", ".join(f"{x:.2f}" for x in v["rounds"]), f"{v['median']:.2f}x"]
            out.append(f"| {b} | " + " | ".join(cells) + " |")
    if extra:
        out.append("")
        out.append("Diagnostics (variants of bare ORT and of the element, frames/s):")
        out.append("")
        impls = sorted({k[0] for k in extra})
        out.append("| batch | " + " | ".join(impls) + " |")
        out.append("|---:|" + "---:|" * len(impls))
        for b in batches:
            out.append(f"| {b} | " + " | ".join(num(extra.get((i, b))) for i in impls) + " |")
    out.append("")
    runs = ", ".join(num(t) for t in r.get("first_buffer_ms_runs") or [])
    out.append(f"First buffer (NULL -> first buffer, median of fresh processes): "
               f"{num(r.get('first_buffer_ms'), '.0f', ' ms')}" + (f" (runs {runs})" if runs else "") + "; "
               f"a whole `gst-launch-1.0 ... num-buffers=1` process: "
               f"{num(r.get('gst_launch_one_buffer_wall_ms'), '.0f', ' ms')}.")
    if r.get("training"):
        out.append("")
        tb = sorted({t["batch"] for t in r["training"]})
        out.append(f"| training, batch {', '.join(str(b) for b in tb)} | videos/s |")
        out.append("|---|---:|")
        for t in r["training"]:
            products = f", {t['products']} products" if t.get("products") else ""
            if t.get("canvas_step"):
                products += f", {t['canvas_step']} canvas step"
            out.append(f"| {t['impl']} ({t['device']}{products}) | {num(t.get('videos_per_s'), '.2f')} |")
        for key, label in (("tch/pytorch training", "tch / PyTorch"),
                           ("tch_plain/pytorch training", "tch plain step / PyTorch"),
                           ("tch/tch_plain training", "tch fused / plain step"),
                           ("tch_bf16/pytorch training", "tch bf16 / PyTorch"),
                           ("tch_bf16/pytorch_bf16 training", "tch bf16 / PyTorch autocast bf16")):
            if key in r.get("ratios", {}):
                out.append(f"| {label} | {r['ratios'][key]:.2f}x |")
    if r.get("finished") is None:
        out.append("")
        out.append("(This results.json is incomplete: the run did not finish.)")
    return "\n".join(out)


if __name__ == "__main__":
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
    path = sys.argv[1] if len(sys.argv) > 1 else default
    with open(path) as f:
        print(markdown(json.load(f)))
