"""syncdraw benchmark: generation and training speed against eager PyTorch, in one run.

Run through `bash scripts/bench.sh` (which builds the release binaries and sets the
environment); see docs/benchmarks.md. Measures, on this machine, the generation
rows with one set of trained weights (--checkpoint and its ONNX export, --onnx),
the training rows on the default one-digit captioned model, freshly made:

  * generation frames/s at several batch sizes for
      element  gst-launch-1.0 syncdrawsrc ... ! fakesink sync=false, whole process
               timed (start-up, model load and all inference): frames_per_s; also
               frames_per_s_excl_startup, the same run less the wall time of a
               one-buffer gst-launch process (gst_launch_one_buffer_wall_ms)
      ort      the same .onnx cut to its `video` output (the graph the element runs)
               in a bare onnxruntime session, always on the CPU provider, session
               creation and a warm-up run excluded
      pytorch  benches/reference.py, eager PyTorch, torch.no_grad, CPU
    and, in generation_extra: the element with parallel-batches=1 (one session
    whose thread pool spans the cores; the default is one single-threaded session
    per core), bare ORT with both outputs, bare ORT on one thread
  * first_buffer_ms: NULL -> first buffer of syncdrawsrc (benches/first_buffer.py)
  * training videos/s at batch 64: `syncdraw-train train` (tch) of the training
    defaults ("tch": f32, the fused canvas step), with the canvas half in
    libtorch's operations ("tch_plain": --canvas-step plain) and with bf16 matrix
    products ("tch_bf16": --products bf16, which trains on the plain step), then reference.py training the "tch" run's checkpoint, as eager
    PyTorch runs it ("pytorch", f32), under PyTorch's CPU autocast to bf16
    ("pytorch_bf16"), and with MKL's vendor check answered as syncdraw-train
    answers it ("pytorch_mkl_avx2": the same MKL kernels; docs/benchmarks.md)
  * the decoder's analytic FLOPs per video, achieved GFLOP/s and the machine's peak

and writes benches/results.json (again after each stage, so a late failure keeps
what was measured; "finished" stays null until the end) and benches/frames_per_s.png.
Before timing anything it checks that reference.py and the ONNX model produce the
same video.
"""
import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from reference import SyncDrawRef, Trainer, load_checkpoint  # noqa: E402
import plot  # noqa: E402


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --- model facts ----------------------------------------------------------------
def onnx_metadata(path):
    m = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def tokenize(vocab, caption, length):
    """training/src/vocab.rs: lowercase, split on non-alphanumerics, right-pad with 0."""
    import re
    words = [w for w in re.split(r"[^0-9a-zA-Z]", caption.lower()) if w]
    index = {t: i for i, t in enumerate(vocab["tokens"]) if i > 0}
    unknown = [w for w in words if w not in index]
    if unknown or not words or len(words) > length:
        raise SystemExit(f"caption {caption!r} does not fit the model (unknown {unknown}, "
                         f"{len(words)} words, at most {length})")
    ids = [index[w] for w in words]
    return ids + [vocab["pad_id"]] * (length - len(ids))


def decoder_flops(c):
    """Analytic FLOPs of generating one video (decoder + caption encoder).

    Matrix products count 2*m*n*k; elementwise operations 1 per output value
    (exp, sigmoid and tanh included as 1). See docs/benchmarks.md for the formula.
    """
    N, A, B, T, Z, H = c["frames"], c["height"], c["width"], c["timesteps"], c["z_dim"], c["dec_size"]
    K = c["write_k"]
    Fg = N if c["variant"] == "syncdraw" else 1
    cap = c.get("caption")
    terms = {}
    if cap and "slots" in cap:
        # Slots: S is embedding rows looked up, no arithmetic; per role its slots.
        E, n_obj = cap["embed_size"], cap["objects"]
        size = {r: n_obj * E * sum(1 for k in cap["slots"] if k["role"] == r) for r in ("where", "what")}
        S = n_obj * E * len(cap["slots"])
    else:
        S = cap["hidden_size"] if cap else 0
        size = {"where": S, "what": S}
        if cap:
            L, E = cap["length"], cap["embed_size"]
            # input and recurrent matmuls (no recurrent term at the first token), gates
            # (4 nonlinearities + c, h updates: ~8 per hidden unit) and the pad mask (4 per unit)
            terms["caption_lstm"] = L * 2 * E * 4 * S + (L - 1) * 2 * S * 4 * S + L * 12 * S
    if c.get("decoder") == "what-where":
        # Two LSTMs of H/2: where reads [z, S_where], what reads [z, S_what].
        hw, hp = H // 2, H - H // 2
        terms["dec_lstm_matmul"] = sum(T * 2 * (Z + size[r]) * 4 * h + (T - 1) * 2 * h * 4 * h
                                       for r, h in (("where", hw), ("what", hp)))
    else:
        hw = hp = H
        terms["dec_lstm_matmul"] = T * 2 * (Z + S) * 4 * H + (T - 1) * 2 * H * 4 * H
    terms["dec_lstm_gates"] = T * 8 * H
    # Bounded windows add a scale, tanh and scale per raw parameter (3 each).
    terms["write_window_linear"] = T * 2 * hw * 5 * Fg + (T * 3 * 5 * Fg if c.get("bounded_windows") else 0)
    terms["write_patch_linear"] = T * 2 * hp * N * K * K
    # Two filterbanks ([F, K, A] and [F, K, B]); per entry: a - mu, square, divide,
    # exp, row sum, normalise = 6.
    terms["filterbanks"] = T * 6 * Fg * K * (A + B)
    # Per frame: (F_p^T w) [A, K] = 2*A*K*K, then (.. F_q) [A, B] = 2*A*K*B.
    terms["write_matmuls"] = T * N * (2 * A * K * K + 2 * A * K * B)
    # divide by gamma, add to the canvas, sigmoid of the final canvas
    terms["canvas"] = T * N * A * B + (T - 1) * N * A * B + N * A * B
    return sum(terms.values()), terms


def grammar_ids(grammar, caption):
    """syncdraw_format::Grammar::encode: per object, each slot's value index + 1 in
    template order; objects the caption does not have are all 0."""
    import re
    words = " ".join(w for w in re.split(r"[^0-9a-zA-Z]", caption.lower()) if w)
    slots = {sl["name"]: sl for sl in grammar["slots"]}
    order = re.findall(r"\{(\w+)\}", grammar["object"])
    pattern = re.escape(grammar["object"])
    for name in order:
        values = sorted(slots[name]["values"], key=len, reverse=True)
        pattern = pattern.replace(re.escape("{" + name + "}"),
                                  "(" + "|".join(re.escape(v) for v in values) + ")")
    ids, rest = [], words
    while rest:
        m = re.match(pattern + r"(?: " + re.escape(grammar["joiner"]) + r" |$)", rest)
        if m is None:
            raise SystemExit(f"caption {caption!r} does not fit the model's grammar")
        for name, value in zip(order, m.groups()):
            ids.append(slots[name]["values"].index(value) + 1)
        rest = rest[m.end():]
    n = len(ids) // len(order)
    if not grammar["min_objects"] <= n <= grammar["max_objects"]:
        raise SystemExit(f"caption {caption!r} has {n} objects, the model takes "
                         f"{grammar['min_objects']} to {grammar['max_objects']}")
    return ids + [0] * (len(order) * (grammar["max_objects"] - n))


# --- timing helpers --------------------------------------------------------------
def timed_loop(fn, seconds, min_iters=3):
    """Runs fn once to warm up, then repeatedly for about `seconds`; (iters, elapsed)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= min_iters:
            return n, dt


def peak_gflops(threads, seconds=3.0):
    """Achieved GFLOP/s of a large fp32 matmul (torch/MKL or oneDNN), the practical peak."""
    torch.set_num_threads(threads)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(3):
        iters, dt = timed_loop(lambda: a @ b, seconds / 3, min_iters=2)
        best = max(best, iters * 2 * n ** 3 / dt / 1e9)
    return best


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_mhz():
    """lscpu's "CPU max MHz", else "CPU MHz", else BogoMIPS / 2 (about the TSC, i.e.
    nominal, clock; a KVM guest often shows only that). Recorded, not used in any figure."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return None
    fields = {k.strip(): v for k, _, v in (line.partition(":") for line in out.splitlines())}
    for key, div in (("CPU max MHz", 1), ("CPU MHz", 1), ("BogoMIPS", 2)):
        try:
            return float(fields[key]) / div
        except (KeyError, ValueError):
            pass
    return None


def paired_ratios(rounds):
    """element / ort and element / pytorch within each round (the two measured
    seconds apart, so a slow spell of the machine hits both), with their median:
    on a noisy machine a steadier figure than the ratio of the best rounds."""
    per = {}
    for r in rounds:
        per.setdefault((r["round"], r["batch"]), {})[r["impl"]] = r["frames_per_s"]
    out = {}
    for (_, b), fps in sorted(per.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for other in ("ort", "pytorch"):
            if "element" in fps and other in fps:
                out.setdefault(f"element/{other}@{b}", {"rounds": []})["rounds"].append(
                    fps["element"] / fps[other])
    for v in out.values():
        v["median"] = statistics.median(v["rounds"])
    return out


def save(results, path):
    """Writes results (ratios recomputed) to path; called after every stage."""
    g = {(r["impl"], r["batch"]): r["frames_per_s"] for r in results["generation"]}
    ratios = {}
    excl = {r["batch"]: r["frames_per_s_excl_startup"] for r in results["generation"]
            if r["impl"] == "element" and "frames_per_s_excl_startup" in r}
    for b in sorted({k[1] for k in g}):
        ratios[f"element/ort@{b}"] = g[("element", b)] / g[("ort", b)]
        ratios[f"element/pytorch@{b}"] = g[("element", b)] / g[("pytorch", b)]
        if b in excl:
            # Start-up excluded (frames_per_s_excl_startup), against bare ORT.
            ratios[f"element_excl_startup/ort@{b}"] = excl[b] / g[("ort", b)]
    tr = {r["impl"]: r["videos_per_s"] for r in results["training"]}
    if "tch" in tr and "pytorch" in tr:
        ratios["tch/pytorch training"] = tr["tch"] / tr["pytorch"]
    if "tch_plain" in tr and "pytorch" in tr:
        ratios["tch_plain/pytorch training"] = tr["tch_plain"] / tr["pytorch"]
    if "tch" in tr and "tch_plain" in tr:
        ratios["tch/tch_plain training"] = tr["tch"] / tr["tch_plain"]
    if "tch" in tr and "pytorch_mkl_avx2" in tr:
        ratios["tch/pytorch_mkl_avx2 training"] = tr["tch"] / tr["pytorch_mkl_avx2"]
    if "tch_bf16" in tr and "pytorch" in tr:
        ratios["tch_bf16/pytorch training"] = tr["tch_bf16"] / tr["pytorch"]
    if "tch_bf16" in tr and "pytorch_bf16" in tr:
        ratios["tch_bf16/pytorch_bf16 training"] = tr["tch_bf16"] / tr["pytorch_bf16"]
    results["ratios"] = ratios
    results["ratios_paired"] = paired_ratios(results.get("generation_rounds", []))
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


# --- the measurements -------------------------------------------------------------
def verify(ref, sess, ids, frames_tol):
    rng = np.random.default_rng(7)
    b = 4
    z = rng.standard_normal((b, ref.T, ref.z_dim)).astype(np.float32)
    feeds = {"z": z}
    cap = None
    if ids is not None:
        cap = np.tile(np.array(ids, dtype=np.int64), (b, 1))
        # also a second caption: the pad/mask path of the caption encoder
        cap[1, 2:] = 0
        feeds["caption"] = cap
    want = sess.run(["video"], feeds)[0]
    with torch.no_grad():
        got = ref.generate(torch.from_numpy(z), None if cap is None else torch.from_numpy(cap)).numpy()
    diff = float(np.abs(want - got).max())
    log(f"reference.py vs ONNX Runtime on the same z and caption: max |diff| = {diff:.3g}")
    if not diff <= frames_tol:
        raise SystemExit(f"reference.py does not reproduce the ONNX model: max diff {diff} > {frames_tol}")
    return diff


def bench_ort(sess, ids, batch, T, Z, N, seconds, outputs):
    z = np.random.default_rng(batch).standard_normal((batch, T, Z)).astype(np.float32)
    feeds = {"z": z}
    if ids is not None:
        feeds["caption"] = np.tile(np.array(ids, dtype=np.int64), (batch, 1))
    iters, dt = timed_loop(lambda: sess.run(outputs, feeds), seconds)
    return iters * batch * N / dt


def bench_pytorch(ref, ids, batch, seconds):
    z = torch.randn(batch, ref.T, ref.z_dim, generator=torch.Generator().manual_seed(batch))
    cap = None if ids is None else torch.tensor([ids] * batch, dtype=torch.int64)
    with torch.no_grad():
        iters, dt = timed_loop(lambda: ref.generate(z, cap), seconds)
    return iters * batch * ref.N / dt


def gst_cmd(model, caption, provider, *props):
    return (["gst-launch-1.0", "-q", "syncdrawsrc", f"model-location={model}", f"caption={caption}", "seed=1",
             f"execution-provider={provider}", *props, "!", "fakesink", "sync=false"])


def bench_element(model, caption, batch, clips, N, provider, *props):
    cmd = gst_cmd(model, caption, provider, f"batch-size={batch}", f"clips={clips}", *props)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"gst-launch-1.0 failed ({p.returncode}): {p.stdout}\n{p.stderr}")
    return clips * N / dt, dt


def first_buffer(model, caption, batch, provider, reps):
    py = shutil.which("python3", path="/usr/bin:/bin") or "python3"
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    times = []
    for _ in range(reps):
        p = subprocess.run([py, os.path.join(HERE, "first_buffer.py"), model, caption, str(batch), provider],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            log(f"first_buffer.py failed: {p.stderr.strip()}")
            return None, []
        times.append(float(p.stdout.strip().splitlines()[-1]))
    return statistics.median(times), times


def gst_launch_first_buffer(model, caption, provider, reps):
    """Wall time of a whole gst-launch-1.0 process that stops after one buffer."""
    cmd = gst_cmd(model, caption, provider, "num-buffers=1")
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_batch_render(model, grammar, count, provider):
    """examples/batch_render on `count` captions (every caption of the model's grammar
    in turn, one clip each, seed 1) into a temporary directory: wall time of the whole
    process (start-up included) and captions per minute."""
    binary = os.path.join(ROOT, "target", "release", "examples", "batch_render")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--workspace", "--example", "batch_render"],
                       cwd=ROOT, check=True)
    if grammar:
        combos = list(itertools.product(*[s["values"] for s in grammar["slots"]]))
        names = [s["name"] for s in grammar["slots"]]

        def phrase(values):
            obj = grammar["object"]
            for name, v in zip(names, values):
                obj = obj.replace("{" + name + "}", v)
            return obj

        # Caption i: min_objects objects, the combinations of the grammar in turn.
        k = grammar["min_objects"]
        captions = [f" {grammar['joiner']} ".join(phrase(combos[(i * k + j) % len(combos)]) for j in range(k))
                    for i in range(count)]
    else:
        captions = [""] * count
    with tempfile.TemporaryDirectory(prefix="syncdraw-render-") as work:
        listing = os.path.join(work, "captions.txt")
        with open(listing, "w") as f:
            f.write("\n".join(captions) + "\n")
        t = time.time()
        subprocess.run([binary, "--captions", listing, "--out-dir", os.path.join(work, "out"), "--seed", "1",
                        "--model", model, "--execution-provider", provider], check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.time() - t
        files = len(os.listdir(os.path.join(work, "out")))
    if files != count:
        raise SystemExit(f"batch renderer wrote {files} files for {count} captions")
    return {"captions": count, "wall_s": wall, "captions_per_minute": count / wall * 60.0,
            "command": f"target/release/examples/batch_render --captions FILE --seed 1 --model {os.path.relpath(model, ROOT)} "
                       f"--execution-provider {provider}"}


def bench_tch_training(train_bin, batch, steps, log_every, threads, workdir, seconds, products="f32",
                       canvas_step="fused"):
    """`syncdraw-train train` of the default one-digit captioned model (the
    training defaults, as `syncdraw-train train --digits 1` trains it, with
    `--products PRODUCTS --canvas-step CANVAS_STEP`); the run's checkpoint, with
    that model's configuration, is what reference.py then trains."""
    run_dir = os.path.join(workdir, f"tch-run-{products}-{canvas_step}")
    cmd = [train_bin, "train", "--run-dir", run_dir, "--device", "cpu", "--threads", str(threads),
           "--batch", str(batch), "--steps", str(steps), "--log-every", str(log_every),
           "--eval-every", "0", "--checkpoint-every", str(steps + 1), "--max-minutes", f"{seconds / 60:.3f}",
           "--train-size", str(max(10 * batch, 640)), "--test-size", "64",
           "--cache-dir", os.path.join(workdir, "data-cache"), "--digits", "1", "--products", products,
           "--canvas-step", canvas_step]
    log("tch: " + " ".join(cmd))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"syncdraw-train train failed: {p.stderr[-2000:]}")
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    if len(lines) < 2:
        raise SystemExit(f"syncdraw-train logged {len(lines)} window(s) in {wall:.0f} s; the first holds the "
                         "warm-up step, so at least 2 are needed (raise --train-seconds or --tch-steps, "
                         "or lower --tch-log-every)")
    # The first window holds the warm-up step and is left out. Like the PyTorch rate:
    # total videos / total time; window i covers the steps after line i-1 up to line i,
    # and its time is its videos / its videos_per_s.
    videos = secs = 0.0
    for prev, cur in zip(lines, lines[1:]):
        v = (cur["step"] - prev["step"]) * batch
        videos += v
        secs += v / cur["videos_per_s"]
    return videos / secs, [x["videos_per_s"] for x in lines], wall, os.path.join(run_dir, "checkpoint.safetensors")


def bench_pytorch_training(checkpoint, batch, steps, threads, seconds, bf16=False):
    torch.set_num_threads(threads)
    ref = SyncDrawRef(checkpoint, requires_grad=True)
    tr = Trainer(ref, bf16=bf16)
    g = torch.Generator().manual_seed(0)
    # Sparse binary videos the size of the data set's (the timing does not depend on
    # the pixel values), random caption ids, fresh noise per step.
    x = (torch.rand(batch, ref.N, ref.A, ref.B, generator=g) > 0.9).float()
    cap = None
    if ref.cap and "slots" in ref.cap:
        slots = ref.cap["slots"]
        cap = torch.stack([torch.randint(1, slots[i % len(slots)]["values"] + 1, (batch,), generator=g)
                           for i in range(ref.cap["objects"] * len(slots))], dim=1)
    elif ref.cap:
        cap = torch.randint(1, ref.cap["vocab_size"], (batch, ref.cap["length"]), generator=g)
    eps = [torch.randn(batch, ref.T, ref.z_dim, generator=g) for _ in range(steps + 1)]
    tr.step(x, cap, eps[0])  # warm-up
    t0 = time.perf_counter()
    losses = []
    for i in range(steps):
        losses.append(float(tr.step(x, cap, eps[i + 1])))
        if i >= 1 and time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    return len(losses) * batch / dt, losses


# MKL's vendor question answered as syncdraw-train answers it
# (training/src/bin/syncdraw-train/mkl_dispatch.rs), for eager PyTorch through LD_PRELOAD.
MKL_SHIM_C = "int mkl_serv_intel_cpu_true(void) { return 1; }\n"


def bench_pytorch_training_mkl_avx2(checkpoint, batch, steps, threads, seconds, work):
    """bench_pytorch_training in a child process whose MKL is told what
    syncdraw-train tells it, so its kernels are the ones syncdraw-train runs: the
    like-for-like row. None (and a log line) when no C compiler is there to build
    the one-line shim."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        log("training pytorch (MKL AVX2 path): skipped, no C compiler for the shim")
        return None
    src, lib = os.path.join(work, "mkl_shim.c"), os.path.join(work, "mkl_shim.so")
    with open(src, "w") as f:
        f.write(MKL_SHIM_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src], check=True)
    code = ("import json, sys; sys.path.insert(0, %r); import bench; "
            "r, l = bench.bench_pytorch_training(%r, %d, %d, %d, %f); print(json.dumps([r, l]))"
            % (HERE, checkpoint, batch, steps, threads, seconds))
    env = dict(os.environ, LD_PRELOAD=lib)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"eager PyTorch training with the MKL shim failed: {p.stderr[-2000:]}")
    rate, losses = json.loads(p.stdout.strip().splitlines()[-1])
    return rate, losses


def main():
    ap = argparse.ArgumentParser(description="syncdraw benchmark (docs/benchmarks.md)")
    ap.add_argument("--onnx", default=os.path.join(ROOT, "models", "mnist1-captions.onnx"))
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "models", "mnist1-captions.safetensors"),
                    help="the --onnx model's checkpoint, for reference.py's generation rows (the training "
                         "rows train the default model)")
    ap.add_argument("--caption", default=None, help="default: the model's first example caption")
    ap.add_argument("--batches", default="1,16,256")
    ap.add_argument("--seconds", type=float, default=4.0, help="target time per generation measurement")
    ap.add_argument("--rounds", type=int, default=3, help="generation rounds; the best is kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--tch-steps", type=int, default=40)
    ap.add_argument("--tch-log-every", type=int, default=5)
    ap.add_argument("--pytorch-train-steps", type=int, default=10)
    ap.add_argument("--train-seconds", type=float, default=150.0,
                    help="time limit of each training measurement (steps stop early when it is reached)")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--render-captions", type=int, default=1000,
                    help="captions for the batch-renderer row (0: skip it)")
    ap.add_argument("--train-bin", default=os.path.join(ROOT, "target", "release", "syncdraw-train"))
    ap.add_argument("--provider", default="cpu", choices=["cpu", "cuda", "auto"],
                    help="the element's execution-provider (element rows only); bare ONNX Runtime and "
                         "eager PyTorch always run on the CPU")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--png", default=os.path.join(HERE, "frames_per_s.png"))
    args = ap.parse_args()

    for p in (args.onnx, args.checkpoint):
        if not os.path.exists(p):
            raise SystemExit(f"{p} does not exist (pass --onnx / --checkpoint)")
    batches = [int(b) for b in args.batches.split(",")]
    threads = args.threads
    torch.set_num_threads(threads)

    md = onnx_metadata(args.onnx)
    ref = SyncDrawRef(args.checkpoint)
    c = ref.c
    N, T, Z = ref.N, ref.T, ref.z_dim
    vocab = json.loads(md.get("syncdraw.vocabulary", "null"))
    grammar = json.loads(md.get("syncdraw.caption_grammar", "null"))
    caption = args.caption
    if caption is None and (vocab or grammar):
        caption = json.loads(md["syncdraw.example_captions"])[0]
    if vocab:
        ids = tokenize(vocab, caption, c["caption"]["length"])
    elif grammar:
        ids = grammar_ids(grammar, caption)
    else:
        ids = None
    if ids is not None and ref.meta.get("vocabulary") and ref.meta["vocabulary"]["tokens"] != vocab["tokens"]:
        raise SystemExit("the checkpoint and the ONNX model have different vocabularies: not the same model")

    so = ort.SessionOptions()
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    diff = verify(ref, sess, ids, 1e-4)
    # The "ort" row runs the graph the element runs: the model cut to its `video`
    # output (ONNX Runtime computes every node of a graph whatever a run asks for,
    # so the whole model also computes `canvases`, which "ort(all)" measures).
    video_only = os.path.join(tempfile.mkdtemp(), "video.onnx")
    onnx.utils.extract_model(args.onnx, video_only,
                             [i.name for i in onnx.load(args.onnx).graph.input], ["video"])
    sess_video = ort.InferenceSession(video_only, so, providers=["CPUExecutionProvider"])
    # Diagnostic only: one intra-op thread, no spinning (small batches are op-overhead
    # bound; ORT's default pool spins on every core and competes with other threads).
    so1 = ort.SessionOptions()
    so1.intra_op_num_threads = 1
    so1.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess1 = ort.InferenceSession(args.onnx, so1, providers=["CPUExecutionProvider"])

    flops, terms = decoder_flops(c)
    gflop = flops / 1e9
    log(f"decoder: {gflop * 1e3:.2f} MFLOP per video")
    peak = peak_gflops(threads)
    mhz = cpu_mhz()
    log(f"peak (torch fp32 2048^3 matmul, {threads} threads): {peak:.1f} GFLOP/s")

    results = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores ({platform.machine()}), {platform.system()} "
                   f"{platform.release()}, "
                   + ("no GPU used" if args.provider == "cpu" else f"element execution-provider={args.provider}"),
        "model": {"onnx": os.path.relpath(args.onnx, ROOT), "checkpoint": os.path.relpath(args.checkpoint, ROOT),
                  "training_steps": md.get("syncdraw.training_steps"), "config": c, "caption": caption},
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
                     "gstreamer": subprocess.run(["gst-launch-1.0", "--version"], capture_output=True,
                                                 text=True).stdout.splitlines()[0]},
        "threads": threads,
        "reference_max_abs_diff": diff,
        "generation": [],
        "first_buffer_ms": None,
        "training": [],
        "decoder_gflop_per_video": gflop,
        "decoder_flop_terms": terms,
        "peak_gflop_per_s": {"measured_matmul_fp32": peak, "cpu_mhz": mhz},
        "loadavg_start": loadavg(),
        "args": vars(args),
        "finished": None,
    }

    # Generation: rounds over (batch, impl) so that background load hits all alike.
    best = {}
    extra = {}
    load_at_best = {}
    element_run = {}  # batch -> (clips, wall seconds) of the best element round

    rounds = []

    def keep(key, fps):
        rounds.append({"round": rnd + 1, "impl": key[0], "batch": key[1], "frames_per_s": fps,
                       "loadavg_1min": loadavg()[0] if loadavg() else None})
        if fps > best.get(key, 0):
            best[key] = fps
            load_at_best[key] = loadavg()[0] if loadavg() else None
    for rnd in range(args.rounds):
        for b in batches:
            fps = bench_ort(sess_video, ids, b, T, Z, N, args.seconds, ["video"])
            keep(("ort", b), fps)
            log(f"round {rnd + 1} batch {b:4d} ort      {fps:9.1f} frames/s")
            fps_all = bench_ort(sess, ids, b, T, Z, N, args.seconds / 2, None)
            extra[("ort_all_outputs", b)] = max(extra.get(("ort_all_outputs", b), 0), fps_all)
            log(f"round {rnd + 1} batch {b:4d} ort(all) {fps_all:9.1f} frames/s (video and canvases)")
            fps_1 = bench_ort(sess1, ids, b, T, Z, N, args.seconds / 2, ["video"])
            extra[("ort_1thread_nospin", b)] = max(extra.get(("ort_1thread_nospin", b), 0), fps_1)
            log(f"round {rnd + 1} batch {b:4d} ort(1t)  {fps_1:9.1f} frames/s (1 intra-op thread, no spinning)")
            fps = bench_pytorch(ref, ids, b, args.seconds)
            keep(("pytorch", b), fps)
            log(f"round {rnd + 1} batch {b:4d} pytorch  {fps:9.1f} frames/s")
            # Enough clips for about `seconds` at the bare-ORT rate, whole batches.
            clips = max(b, int(round(best[("ort", b)] / N * args.seconds / b)) * b)
            fps, dt = bench_element(args.onnx, caption, b, clips, N, args.provider)
            if fps > best.get(("element", b), 0):
                element_run[b] = (clips, dt)
            keep(("element", b), fps)
            log(f"round {rnd + 1} batch {b:4d} element  {fps:9.1f} frames/s ({clips} clips in {dt:.2f} s)")
            fps_one, _ = bench_element(args.onnx, caption, b, clips, N, args.provider, "parallel-batches=1")
            extra[("element_one_session", b)] = max(extra.get(("element_one_session", b), 0), fps_one)
            log(f"round {rnd + 1} batch {b:4d} element(1) {fps_one:7.1f} frames/s (parallel-batches=1: one session on all cores)")
    # The peak again after the generation rounds (background load varies): keep the best.
    peak2 = peak_gflops(threads)
    results["peak_gflop_per_s"]["measured_matmul_fp32_runs"] = [peak, peak2]
    peak = max(peak, peak2)
    results["peak_gflop_per_s"]["measured_matmul_fp32"] = peak
    for impl in ("element", "ort", "pytorch"):
        for b in batches:
            fps = best[(impl, b)]
            row = {
                "impl": impl, "device": args.provider if impl == "element" else "cpu", "batch": b,
                "frames_per_s": fps,
                "gflop_per_s": fps / N * gflop, "fraction_of_peak": fps / N * gflop / peak,
                "loadavg_1min": load_at_best[(impl, b)],
            }
            if impl == "element":
                row["clips"], row["wall_s"] = element_run[b]
            results["generation"].append(row)
    results["generation_rounds"] = rounds
    results["generation_extra"] = [{"impl": k[0], "device": "cpu", "batch": k[1], "frames_per_s": v}
                                   for k, v in extra.items()]
    save(results, args.out)
    plot.plot(results, args.png)

    fb, fbs = first_buffer(args.onnx, caption, 1, args.provider, 3)
    results["first_buffer_ms"] = fb
    results["first_buffer_ms_runs"] = fbs
    startup_ms = gst_launch_first_buffer(args.onnx, caption, args.provider, 3)
    results["gst_launch_one_buffer_wall_ms"] = startup_ms
    log(f"first buffer: {fb} ms (runs {fbs}); whole gst-launch num-buffers=1 process: {startup_ms:.0f} ms")
    # The element's rate includes process start-up, model load and a cold first batch;
    # bare ORT's excludes session creation and has a warm-up. For a like-for-like rate,
    # subtract the wall time of a whole one-buffer (batch-1) gst-launch process.
    for row in results["generation"]:
        if row["impl"] == "element" and row["wall_s"] > startup_ms / 1e3:
            row["frames_per_s_excl_startup"] = row["clips"] * N / (row["wall_s"] - startup_ms / 1e3)
    save(results, args.out)

    if args.render_captions > 0:
        results["batch_render"] = bench_batch_render(args.onnx, grammar, args.render_captions, args.provider)
        log(f"batch renderer: {results['batch_render']['captions_per_minute']:.0f} captions/min "
            f"({args.render_captions} captions in {results['batch_render']['wall_s']:.1f} s)")
        save(results, args.out)

    if not args.skip_training:
        with tempfile.TemporaryDirectory(prefix="syncdraw-bench-") as work:
            # "tch": the training defaults (f32 products, the fused canvas step);
            # "tch_plain": the same run with --canvas-step plain; "tch_bf16": with
            # --products bf16.
            for impl, products, canvas_step in (("tch", "f32", "fused"), ("tch_plain", "f32", "plain"),
                                                ("tch_bf16", "bf16", "fused")):
                rate, windows, wall, ck = bench_tch_training(args.train_bin, args.train_batch, args.tch_steps,
                                                             args.tch_log_every, threads, work, args.train_seconds,
                                                             products, canvas_step)
                meta = load_checkpoint(ck)[0]
                used = meta.get("products", "f32")
                log(f"training {impl:8s} {rate:.2f} videos/s ({used} products; log windows {windows}, "
                    f"{wall:.0f} s)")
                results["training"].append({"impl": impl, "device": "cpu", "batch": args.train_batch,
                                            "videos_per_s": rate, "log_windows_videos_per_s": windows,
                                            "max_steps": args.tch_steps, "products": used,
                                            "canvas_step": meta.get("canvas_step", "plain"),
                                            "model": "syncdraw-train train defaults, --digits 1",
                                            "config": meta["model"]})
                if impl == "tch":
                    trained = ck
                save(results, args.out)
            # The same model (the tch run's checkpoint) in eager PyTorch; checked like
            # the generation rows' model: its video against the run's ONNX export.
            exported = os.path.join(work, "trained.onnx")
            subprocess.run([args.train_bin, "export", "--checkpoint", trained, "--out", exported],
                           check=True, capture_output=True)
            ref_train = SyncDrawRef(trained)
            cap = ref_train.cap
            train_ids = ([1] * (cap["objects"] * len(cap["slots"]) if "slots" in cap else cap["length"])
                         if cap else None)
            results["training_reference_max_diff"] = verify(
                ref_train, ort.InferenceSession(exported, providers=["CPUExecutionProvider"]), train_ids, 1e-4)
            prate, losses = bench_pytorch_training(trained, args.train_batch, args.pytorch_train_steps, threads,
                                                   args.train_seconds)
            log(f"training pytorch  {prate:.2f} videos/s (losses {[round(x, 1) for x in losses]})")
            results["training"].append({"impl": "pytorch", "device": "cpu", "batch": args.train_batch,
                                        "videos_per_s": prate, "steps": len(losses)})
            save(results, args.out)
            # PyTorch's own bf16 mixed precision (CPU autocast), beside syncdraw-train's bf16 products.
            brate, blosses = bench_pytorch_training(trained, args.train_batch, args.pytorch_train_steps, threads,
                                                    args.train_seconds, bf16=True)
            log(f"training pytorch (autocast bf16) {brate:.2f} videos/s")
            results["training"].append({"impl": "pytorch_bf16", "device": "cpu", "batch": args.train_batch,
                                        "videos_per_s": brate, "steps": len(blosses)})
            save(results, args.out)
            shimmed = bench_pytorch_training_mkl_avx2(trained, args.train_batch, args.pytorch_train_steps,
                                                      threads, args.train_seconds, work)
            if shimmed is not None:
                srate, slosses = shimmed
                log(f"training pytorch (MKL AVX2 path) {srate:.2f} videos/s")
                results["training"].append({"impl": "pytorch_mkl_avx2", "device": "cpu",
                                            "batch": args.train_batch, "videos_per_s": srate,
                                            "steps": len(slosses)})

    results["loadavg_end"] = loadavg()
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save(results, args.out)
    log(f"wrote {args.out} and {args.png}")
    for k, v in results["ratios"].items():
        log(f"{k}: {v:.2f}x")


if __name__ == "__main__":
    main()
