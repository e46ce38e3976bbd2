#!/usr/bin/env bash
# The fixed-budget comparisons of docs/results.md: the default model of a data
# set (grammar slots, what-where decoder where there are captions, bounded
# windows) trained for STEPS steps with two seeds each, several ways (every
# option of the comparison spelled out, whatever the defaults).
# COMPARISON=start (the default; "Training dynamics at a fixed budget"), on grey
# digits unless PIXELS=binarized:
#   base:   the paper's normaliser and c^0 = 0 (the defaults before this comparison)
#   stable: stable filterbank rows (no row can die, filterbank.rs)
#   canvas: stable, and a learned initial canvas starting at the data's mean pixel
#   forget: stable, and LSTM forget-gate bias 1 at initialisation
# COMPARISON=optimizer ("Adam's settings at a fixed budget"), on binarised
# digits unless PIXELS=grey, the training defaults otherwise:
#   paper:  Adam as the paper's code: learning rate 1e-3, beta1 0.5, clip 10
#   beta09: beta1 0.9 (the usual Adam)
#   noclip: no gradient clipping
#   lr2e-3: learning rate 2e-3
# COMPARISON=batch ("Batch size at a fixed number of videos"), on binarised
# digits unless PIXELS=grey, the training defaults otherwise; STEPS are the
# batch-64 arm's, the others take as many steps as see the same videos:
#   b64:      batch 64, learning rate 1e-3
#   b128:     batch 128, learning rate 1e-3, STEPS / 2 steps
#   b128-lr:  batch 128, learning rate 1.41e-3 (sqrt 2 x), STEPS / 2 steps
# DATASET picks the data set: 1digit-captions (the default), 1digit,
# 2digits-captions or 2digits. PARALLEL runs at a time (default 2), one libtorch
# thread each; the final evaluation of each run uses all 2,000 test videos. On 2
# CPU cores 400 steps of one data set take about 20-50 minutes in all, with the
# machine at full speed or not. The train reports (JSON) and metrics go to
# OUT_DIR (default docs/runs/dynamics/DATASET, or docs/runs/optimizer/DATASET-PIXELS).
# ARMS and SEEDS (default: every arm of the comparison, seeds 1 and 2) pick a
# subset, e.g. ARMS="paper lr2e-3" SEEDS=3 for a third seed of two arms. Not part
# of the tests.
#   COMPARISON=... DATASET=... PARALLEL=... bash scripts/compare-dynamics.sh [STEPS [RUNS_DIR [OUT_DIR]]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
dataset=${DATASET:-1digit-captions}
comparison=${COMPARISON:-start}
case $comparison in
  start) pixels=${PIXELS:-grey}; where=dynamics/$dataset ;;
  optimizer) pixels=${PIXELS:-binarized}; where=optimizer/$dataset-$pixels ;;
  batch) pixels=${PIXELS:-binarized}; where=batch/$dataset-$pixels ;;
  *) echo "COMPARISON must be start, optimizer or batch, not '$comparison'" >&2; exit 2 ;;
esac
case $pixels in
  grey) pix=() ;;
  binarized) pix=(--binarize) ;;
  *) echo "PIXELS must be grey or binarized, not '$pixels'" >&2; exit 2 ;;
esac
[ "$comparison" = start ] && [ "$pixels" = binarized ] && where=dynamics/$dataset-binarized
runs=${2:-$HOME/.cache/syncdraw/runs/$where}
out=${3:-docs/runs/$where}
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
declare -A args
declare -A batch=() # an arm's batch size where it is not 64
if [ "$comparison" = start ]; then
  names=(base stable canvas forget)
  args=(
    [base]="--stable-filterbank false --canvas-init zero"
    [stable]="--stable-filterbank true --canvas-init zero"
    [canvas]="--stable-filterbank true --canvas-init data-mean"
    [forget]="--stable-filterbank true --canvas-init zero --forget-bias 1"
  )
elif [ "$comparison" = batch ]; then
  names=(b64 b128 b128-lr)
  args=(
    [b64]="--batch 64 --lr 1e-3"
    [b128]="--batch 128 --lr 1e-3"
    [b128-lr]="--batch 128 --lr 1.41e-3"
  )
  batch=([b128]=128 [b128-lr]=128)
else
  names=(paper beta09 noclip lr2e-3)
  args=(
    [paper]="--lr 1e-3 --beta1 0.5 --clip 10"
    [beta09]="--lr 1e-3 --beta1 0.9 --clip 10"
    [noclip]="--lr 1e-3 --beta1 0.5 --clip 0"
    [lr2e-3]="--lr 2e-3 --beta1 0.5 --clip 10"
  )
fi
run() { # NAME SEED
  # Every arm sees as many videos as STEPS at batch 64.
  local dir="$runs/$1-seed$2" arm_steps=$((steps * 64 / ${batch[$1]:-64}))
  # shellcheck disable=SC2086
  "$bin" --threads 1 train --run-dir "$dir" "${data[@]}" "${pix[@]}" --steps "$arm_steps" --seed "$2" \
    --log-every 50 --eval-every 0 --checkpoint-every 100 --resume ${args[$1]} \
    > "$out/$1-seed$2.json" 2> "$dir.log"
  cp "$dir/metrics.jsonl" "$out/$1-seed$2.metrics.jsonl"
}
read -r -a names <<< "${ARMS:-${names[*]}}"
for name in "${names[@]}"; do
  [ -n "${args[$name]:-}" ] || { echo "no arm '$name' in the $comparison comparison" >&2; exit 2; }
done
for name in "${names[@]}"; do
  for seed in ${SEEDS:-1 2}; do
    run "$name" "$seed" &
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
  done
done
wait
echo "[compare] wrote $out"
