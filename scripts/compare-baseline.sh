#!/usr/bin/env bash
# The Baseline's temporal grid (docs/results.md, "The Baseline's cuboid"): one
# digit without captions, STEPS steps, two seeds each, three ways:
#   global:      one window shared by all frames (Table 1's Global)
#   baseline-k:  the Baseline's cuboid with as many temporal points as spatial
#                ones (K_t = K = 10 = N: the cuboid before --temporal-k)
#   baseline-5:  the cuboid with 5 temporal points over the 10 frames (the
#                default since)
# Every other setting at its default. Two runs at a time, one libtorch thread
# each; the final evaluation uses all 2,000 test videos. On 2 CPU cores 400 steps
# take about 40 minutes in all. JSON and metrics to OUT_DIR (default
# docs/runs/baseline). Not part of the tests.
#   bash scripts/compare-baseline.sh [STEPS [RUNS_DIR [OUT_DIR]]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
runs=${2:-$HOME/.cache/syncdraw/runs/baseline}
out=${3:-docs/runs/baseline}
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
# SYNCDRAW_TRAIN: a syncdraw-train binary to use instead of building one.
bin=${SYNCDRAW_TRAIN:-target/release/syncdraw-train}
[ -n "${SYNCDRAW_TRAIN:-}" ] || cargo build --release -p syncdraw-training
mkdir -p "$runs" "$out"
declare -A args=(
  [global]="--variant global"
  [baseline-k]="--variant baseline --temporal-k 10"
  [baseline-5]="--variant baseline --temporal-k 5"
)
run() { # NAME SEED
  local dir="$runs/$1-seed$2"
  # shellcheck disable=SC2086
  "$bin" --threads 1 train --run-dir "$dir" --digits 1 --captions false --steps "$steps" \
    --seed "$2" --log-every 50 --eval-every 0 --checkpoint-every 100 --resume ${args[$1]} \
    > "$out/$1-seed$2.json" 2> "$dir.log"
  cp "$dir/metrics.jsonl" "$out/$1-seed$2.metrics.jsonl"
}
for name in global baseline-k baseline-5; do
  run "$name" 1 &
  run "$name" 2 &
  wait
done
echo "[compare] wrote $out"
