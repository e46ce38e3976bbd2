#!/usr/bin/env bash
# The training-dynamics comparison of docs/results.md ("Training dynamics at a
# fixed budget"): the default model of a data set (grammar slots, what-where
# decoder where there are captions, bounded windows) trained for STEPS steps on
# grey digits with two seeds each, four ways (every option spelled out, whatever
# the defaults):
#   base:   the paper's normaliser and c^0 = 0 (the defaults before this comparison)
#   stable: stable filterbank rows (no row can die, filterbank.rs)
#   canvas: stable, and a learned initial canvas starting at the data's mean pixel
#   forget: stable, and LSTM forget-gate bias 1 at initialisation
# DATASET picks the data set: 1digit-captions (the default), 1digit,
# 2digits-captions or 2digits. PARALLEL runs at a time (default 2), one libtorch
# thread each; the final evaluation of each run uses all 2,000 test videos. On 2
# CPU cores 400 steps of one data set take about 20-50 minutes in all, with the
# machine at full speed or not. The train reports (JSON) and metrics go to
# OUT_DIR (default docs/runs/dynamics/DATASET). Not part of the tests.
#   DATASET=... PARALLEL=... bash scripts/compare-dynamics.sh [STEPS [RUNS_DIR [OUT_DIR]]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
dataset=${DATASET:-1digit-captions}
runs=${2:-$HOME/.cache/syncdraw/runs/dynamics/$dataset}
out=${3:-docs/runs/dynamics/$dataset}
parallel=${PARALLEL:-2}
case $dataset in
  1digit-captions) data=(--digits 1) ;;
  1digit) data=(--digits 1 --captions false) ;;
  2digits-captions) data=(--digits 2) ;;
  2digits) data=(--digits 2 --captions false) ;;
  *) echo "DATASET must be 1digit-captions, 1digit, 2digits-captions or 2digits, not '$dataset'" >&2; exit 2 ;;
esac
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
  "$bin" --threads 1 train --run-dir "$dir" "${data[@]}" --steps "$steps" --seed "$2" \
    --log-every 50 --eval-every 0 --checkpoint-every 100 --resume ${args[$1]} \
    > "$out/$1-seed$2.json" 2> "$dir.log"
  cp "$dir/metrics.jsonl" "$out/$1-seed$2.metrics.jsonl"
}
for name in base stable canvas forget; do
  for seed in 1 2; do
    run "$name" "$seed" &
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
  done
done
wait
echo "[compare] wrote $out"
