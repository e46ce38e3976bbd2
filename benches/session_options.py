"""ONNX Runtime session creation time and per-frame speed under a few session
options (docs/benchmarks.md, "Where the first buffer goes"):

    python3 benches/session_options.py [MODEL.onnx] [--threads N] [--sessions N]

Prints, per option set, the creation time of each of --sessions sessions (ms), the
per-frame time at batch 1, 16 and 256 (ms) and the peak resident memory of a fresh
process running batch 256 (MiB). Runs ONNX Runtime's Python API (the same library
the element loads); stop other work on the machine first.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

OPTIONS = {
    "default (sequential)": {},
    "enable_mem_reuse = False": {"enable_mem_reuse": False},
    "parallel execution mode": {"execution_mode": "parallel"},
    "parallel, 1 inter-op thread": {"execution_mode": "parallel", "inter_op_num_threads": 1},
}


def session_options(opts, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    for k, v in opts.items():
        if k == "execution_mode":
            v = ort.ExecutionMode.ORT_PARALLEL
        setattr(so, k, v)
    return so


def feed(model, batch):
    m = onnx.load(model, load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    t, z = int(meta["syncdraw.timesteps"]), int(meta["syncdraw.z_dim"])
    inputs = {"z": np.random.default_rng(1).standard_normal((batch, t, z)).astype(np.float32)}
    length = int(meta.get("syncdraw.caption_length", "0"))
    if length:
        inputs["caption"] = np.ones((batch, length), np.int64)
    return inputs, int(meta["syncdraw.frames"])


def peak_rss(model, opts, threads, batch):
    """Peak RSS (MiB) of a fresh process running `batch` three times."""
    code = (
        "import resource, sys, json; sys.path.insert(0, %r); import session_options as s; "
        "import onnxruntime as ort; o = s.session_options(json.loads(%r), %d); "
        "sess = ort.InferenceSession(%r, o); f, _ = s.feed(%r, %d); "
        "[sess.run(['video'], f) for _ in range(3)]; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    ) % (HERE, json.dumps(opts), threads, model, model, batch)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "models", "mnist1-captions.onnx"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--sessions", type=int, default=4)
    a = ap.parse_args()
    print(f"{a.model}: {len(onnx.load(a.model, load_external_data=False).graph.node)} nodes, "
          f"{a.threads} intra-op threads")
    for name, opts in OPTIONS.items():
        so = session_options(opts, a.threads)
        created = []
        for _ in range(a.sessions):
            t = time.perf_counter()
            sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
            created.append((time.perf_counter() - t) * 1e3)
        per_frame = []
        for batch in (1, 16, 256):
            inputs, frames = feed(a.model, batch)
            sess.run(["video"], inputs)
            n = max(3, 64 // batch)
            t = time.perf_counter()
            for _ in range(n):
                sess.run(["video"], inputs)
            per_frame.append((time.perf_counter() - t) / n / batch / frames * 1e3)
        rss = peak_rss(a.model, opts, a.threads, 256)
        print(f"{name:30s} creation ms {' '.join(f'{c:.0f}' for c in created):24s} "
              f"per frame ms {' / '.join(f'{p:.3f}' for p in per_frame)}   peak RSS at batch 256 {rss:.0f} MiB")


if __name__ == "__main__":
    main()
