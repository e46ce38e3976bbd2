"""Training speed in paired rounds: `syncdraw-train train` with the fused canvas
step (the default, "tch"), the same run with `--canvas-step plain` ("tch_plain"),
and the same model in eager PyTorch (benches/reference.py, "pytorch"), one after
the other in each of R rounds, so that a host whose speed drifts (a shared
machine) slows all three alike. Prints each round, the medians and the median
of the per-round ratios, and writes them as JSON.

    source build-env.sh
    python benches/training_rounds.py [--rounds 5] [--out FILE]

The measurements are bench.py's own (bench_tch_training, bench_pytorch_training:
batch 64, the default one-digit captioned model made fresh, the first log window
of syncdraw-train left out); bench.py measures each once, in a longer run.
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import bench


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tch-steps", type=int, default=40)
    ap.add_argument("--tch-log-every", type=int, default=5)
    ap.add_argument("--pytorch-steps", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=150.0, help="time limit of each measurement")
    ap.add_argument("--train-bin", default=os.path.join(bench.ROOT, "target", "release", "syncdraw-train"))
    ap.add_argument("--out", default=os.path.join(bench.HERE, "training_rounds.json"))
    args = ap.parse_args()
    bench.torch.set_num_threads(args.threads)

    rounds = []
    with tempfile.TemporaryDirectory(prefix="syncdraw-train-rounds-") as work:
        checkpoint = None
        for r in range(args.rounds):
            row = {"round": r + 1, "loadavg_1min": bench.loadavg()[0] if bench.loadavg() else None}
            for impl, step in (("tch", "fused"), ("tch_plain", "plain")):
                run = os.path.join(work, f"round{r + 1}")
                os.makedirs(run, exist_ok=True)
                rate, _, _, ck = bench.bench_tch_training(args.train_bin, args.batch, args.tch_steps,
                                                          args.tch_log_every, args.threads, run, args.seconds,
                                                          "f32", step)
                row[impl] = rate
                checkpoint = checkpoint or ck
            row["pytorch"], _ = bench.bench_pytorch_training(checkpoint, args.batch, args.pytorch_steps,
                                                             args.threads, args.seconds)
            row["tch/pytorch"] = row["tch"] / row["pytorch"]
            row["tch_plain/pytorch"] = row["tch_plain"] / row["pytorch"]
            row["tch/tch_plain"] = row["tch"] / row["tch_plain"]
            rounds.append(row)
            bench.log(f"round {r + 1}: tch {row['tch']:.1f}, tch_plain {row['tch_plain']:.1f}, "
                      f"pytorch {row['pytorch']:.1f} videos/s; tch/pytorch {row['tch/pytorch']:.2f}x")
    keys = ("tch", "tch_plain", "pytorch", "tch/pytorch", "tch_plain/pytorch", "tch/tch_plain")
    median = {k: statistics.median(x[k] for x in rounds) for k in keys}
    result = {"rounds": rounds, "median": median, "args": vars(args),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("| round | tch (fused) | tch_plain | eager PyTorch | tch / PyTorch | plain / PyTorch | fused / plain |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for x in rounds + [dict(median, round="median")]:
        print(f"| {x['round']} | {x['tch']:.1f} | {x['tch_plain']:.1f} | {x['pytorch']:.1f} | "
              f"{x['tch/pytorch']:.2f}x | {x['tch_plain/pytorch']:.2f}x | {x['tch/tch_plain']:.2f}x |")
    bench.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
