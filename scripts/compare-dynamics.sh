#!/usr/bin/env bash
# The training-dynamics comparison of docs/results.md ("Training dynamics at a
# fixed budget"): the default one-digit captioned model (grammar slots,
# what-where decoder, bounded windows) trained for STEPS steps with two seeds
# each, four ways (every option spelled out, whatever the defaults):
#   base:   the paper's normaliser and c^0 = 0 (the defaults before this comparison)
#   stable: stable filterbank rows (no row can die, filterbank.rs)
#   canvas: stable, and a learned initial canvas starting at the data's mean pixel
#   forget: stable, and LSTM forget-gate bias 1 at initialisation
# Two runs at a time, one libtorch thread each; the final evaluation of each run
# uses all 2,000 test videos. On 2 CPU cores 400 steps take about 45 minutes in
# all. The train reports (JSON) and metrics go to OUT_DIR (default
# docs/runs/dynamics). Not part of the tests.
#   bash scripts/compare-dynamics.sh [STEPS [RUNS_DIR [OUT_DIR]]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
runs=${2:-$HOME/.cache/syncdraw/runs/dynamics}
out=${3:-docs/runs/dynamics}
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
# SYNCDRAW_TRAIN: a syncdraw-train binary to use instead of building one.
bin=${SYNCDRAW_TRAIN:-target/release/syncdraw-train}
[ -n "${SYNCDRAW_TRAIN:-}" ] || cargo build --release -p syncdraw-training
mkdir -p "$runs" "$out"
declare -A args=(
  [base]="--stable-filterbank false --canvas-init zero"
  [stable]="--stable-filterbank true --canvas-init zero"
  [canvas]="--stable-filterbank true --canvas-init data-mean"
  [forget]="--stable-filterbank true --canvas-init zero --forget-bias 1"
)
run() { # NAME SEED
  local dir="$runs/$1-seed$2"
  # shellcheck disable=SC2086
  "$bin" --threads 1 train --run-dir "$dir" --digits 1 --steps "$steps" --seed "$2" \
    --log-every 50 --eval-every 0 --checkpoint-every 100 --resume ${args[$1]} \
    > "$out/$1-seed$2.json" 2> "$dir.log"
  cp "$dir/metrics.jsonl" "$out/$1-seed$2.metrics.jsonl"
}
for name in base stable canvas forget; do
  run "$name" 1 &
  run "$name" 2 &
  wait
done
echo "[compare] wrote $out"
