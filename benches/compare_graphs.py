"""Two exports of the same checkpoint, side by side in bare ONNX Runtime
(docs/benchmarks.md, "The exported graph"):

    python3 benches/compare_graphs.py OLD.onnx NEW.onnx [--threads N] [--rounds N]

Both models are first cut to their `video` output (as the element cuts them),
then: the largest difference between their videos on one seeded batch of 16,
and, alternating between the two so that machine noise falls on both alike:
session creation (median of `rounds`) and frames/s at batch 1, 16 and 256
(median of `rounds` runs of 1.5 s each). Prints one JSON object. Stop other work
on the machine first.
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort


def video_only(src, dst):
    inputs = [i.name for i in onnx.load(src).graph.input]
    onnx.utils.extract_model(src, dst, inputs, ["video"])
    m = onnx.load(dst)
    feeds = {}
    for i in m.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = dims
    return len(m.graph.node), feeds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    paths, out = {}, {"threads": a.threads, "rounds": a.rounds, "models": {}}
    for tag in ["old", "new"]:
        paths[tag] = os.path.join(tmp, f"{tag}.onnx")
        nodes, feeds = video_only(getattr(a, tag), paths[tag])
        out["models"][tag] = {"path": getattr(a, tag), "nodes_for_video": nodes}
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    create = {"old": [], "new": []}
    sessions = {}
    for _ in range(a.rounds):
        for tag in ["old", "new"]:
            t0 = time.perf_counter()
            sessions[tag] = ort.InferenceSession(paths[tag], so, providers=["CPUExecutionProvider"])
            create[tag].append(time.perf_counter() - t0)
    out["create_ms"] = {t: 1000 * statistics.median(v) for t, v in create.items()}
    rng = np.random.default_rng(1)
    # The same numbers? Both on one batch of 16 (seeded z, caption ids 1).
    feed = {}
    for i in sessions["old"].get_inputs():
        shape = [16] + list(i.shape[1:])
        feed[i.name] = (np.ones(shape, np.int64) if i.type == "tensor(int64)"
                        else rng.standard_normal(shape).astype(np.float32))
    videos = {t: sessions[t].run(["video"], feed)[0] for t in ["old", "new"]}
    out["max_abs_video_diff"] = float(np.abs(videos["old"] - videos["new"]).max())
    out["frames_per_s"] = {}
    for batch in [1, 16, 256]:
        fps = {"old": [], "new": []}
        for _ in range(a.rounds):
            for tag in ["old", "new"]:
                s = sessions[tag]
                feed = {}
                for i in s.get_inputs():
                    shape = [batch] + list(i.shape[1:])
                    if i.type == "tensor(int64)":
                        feed[i.name] = np.ones(shape, np.int64)
                    else:
                        feed[i.name] = rng.standard_normal(shape).astype(np.float32)
                frames = batch * s.get_outputs()[0].shape[1]
                s.run(["video"], feed)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < 1.5:
                    s.run(["video"], feed)
                    n += 1
                fps[tag].append(n * frames / (time.perf_counter() - t0))
        old, new = statistics.median(fps["old"]), statistics.median(fps["new"])
        out["frames_per_s"][str(batch)] = {"old": old, "new": new, "new/old": new / old}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
