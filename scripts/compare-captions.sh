#!/usr/bin/env bash
# The caption-conditioning comparison of docs/results.md ("Captions that compose"):
# three designs trained with the same seed, data and step budget, at the same time,
# one libtorch thread each, then measured by the shipped evaluator on the unseen
# test captions and on the training captions (50 videos per caption).
#   words:     the format-1 word-LSTM caption encoder, the paper's joint decoder
#   slots:     grammar slots (one embedding table per slot kind), joint decoder
#   whatwhere: grammar slots, what-where decoder (motion -> windows, digit -> patches)
# All three with bounded attention windows. On 2 CPU cores 1,000 steps take about
# 70 minutes. JSON goes to OUT_DIR (default docs/runs/captions). Not part of the tests.
#   bash scripts/compare-captions.sh [STEPS [RUNS_DIR [OUT_DIR]]]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-1000}
runs=${2:-$HOME/.cache/syncdraw/runs}
out=${3:-docs/runs/captions}
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
cargo build --release -p syncdraw-training
bin=target/release/syncdraw-train
mkdir -p "$runs" "$out"
declare -A args=(
  [words]="--caption-encoder words --decoder joint"
  [slots]="--caption-encoder slots --decoder joint"
  [whatwhere]="--caption-encoder slots --decoder what-where"
)
for name in words slots whatwhere; do
  # shellcheck disable=SC2086
  "$bin" --threads 1 train --run-dir "$runs/cmp-$name" --digits 1 --steps "$steps" --seed 1 \
    --log-every 50 --eval-every 500 --eval-videos 200 --checkpoint-every 250 --resume \
    ${args[$name]} > "$runs/cmp-$name.log" 2>&1 &
done
wait
for name in words slots whatwhere; do
  cp "$runs/cmp-$name/metrics.jsonl" "$out/$name.metrics.jsonl"
  for split in test train; do
    echo "[compare] $name, $split captions"
    "$bin" fidelity --checkpoint "$runs/cmp-$name/checkpoint.safetensors" \
      --evaluator models/evaluator.safetensors --videos-per-caption 50 \
      --captions "$split" --seed 1 > "$out/$name-$split.json"
  done
done
echo "[compare] wrote $out"
