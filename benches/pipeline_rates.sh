#!/usr/bin/env bash
# Frames per second of whole gst-launch-1.0 processes (start-up included) for
# builds or settings of the plugin side by side, alternating, with fakesink or with
# an x264 encoder downstream. Each argument is a folder holding a libgstsyncdraw.so
# (copy target/release/libgstsyncdraw.so there after each build you want to
# compare), optionally followed by @ and element properties separated by commas,
# e.g. target/release@parallel-batches=1 (the same build with other settings).
#
#   bash benches/pipeline_rates.sh [--batch B] [--clips N] [--rounds R] [--x264] DIR[@PROP=V,...]...
#
# Used in docs/benchmarks.md for the scheduler, thread-spinning and parallel-batches
# comparisons.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/build-env.sh"
batch=1 clips=3000 rounds=3 sink=fake dirs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --x264) sink=x264; shift ;;
    *) dirs+=("$1"); shift ;;
  esac
done
[ ${#dirs[@]} -gt 0 ] || { echo "usage: $0 [--batch B] [--clips N] [--rounds R] [--x264] DIR[@PROP=V,...]..." >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for variant in "${dirs[@]}"; do
    d=${variant%%@*}
    props=()
    if [ "$d" != "$variant" ]; then IFS=, read -r -a props <<< "${variant#*@}"; fi
    if [ "$sink" = x264 ]; then
      tail=(videoconvert ! x264enc speed-preset=ultrafast ! mp4mux ! filesink "location=$out/out.mp4")
    else
      tail=(fakesink sync=false)
    fi
    t0=$(date +%s.%N)
    GST_REGISTRY="$out/registry-$(echo "$d" | md5sum | cut -c1-8).bin" GST_PLUGIN_PATH="$d" \
      gst-launch-1.0 -q syncdrawsrc "model-location=$ROOT/models/mnist1-captions.onnx" \
      caption="digit 3 is moving up and down" seed=1 "batch-size=$batch" "clips=$clips" ${props[@]+"${props[@]}"} ! "${tail[@]}"
    t1=$(date +%s.%N)
    python3 -c "import sys; print(f'{sys.argv[1]}  batch {sys.argv[2]}  {sys.argv[3]}  round {sys.argv[4]}: {int(sys.argv[5]) * 10 / (float(sys.argv[7]) - float(sys.argv[6])):.0f} frames/s')" \
      "$variant" "$batch" "$sink" "$r" "$clips" "$t0" "$t1"
  done
done
