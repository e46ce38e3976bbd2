#!/usr/bin/env bash
# Caption fidelity of the shipped models, as docs/results.md reports it: the
# evaluator's accuracy on the real test splits, then every shipped model on its
# test captions (and, for comparison, its training captions). JSON goes to
# docs/runs/fidelity/ (or OUT_DIR). CPU, a few minutes. Not part of the tests.
#   bash scripts/fidelity.sh [EVALUATOR [OUT_DIR]]
set -euo pipefail
cd "$(dirname "$0")/.."
ev=${1:-models/evaluator.safetensors}
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
cargo build --release -p syncdraw-training
bin=target/release/syncdraw-train
out=${2:-docs/runs/fidelity}
mkdir -p "$out"
"$bin" evaluator accuracy --evaluator "$ev" --misread "$out/evaluator-misread.json" \
    > "$out/evaluator-accuracy.json"
# Temperature 1 samples the models as trained (MODEL-SPLIT.json); the captioned
# models are also measured at the element's default temperature, 0.8
# (MODEL-SPLIT-t0.8.json), which is what a user of syncdrawsrc gets.
for spec in mnist1-captions:50 mnist2-captions:10 mnist1-uncond:50 mnist2-uncond:10; do
    model=${spec%%:*} per=${spec##*:}
    for split in test train; do
        case $model in *uncond) [ "$split" = test ] || continue ;; esac
        for t in 1 0.8; do
            case $model in *uncond) [ "$t" = 1 ] || continue ;; esac
            name=$model-$split
            [ "$t" = 1 ] || name=$name-t$t
            echo "[fidelity] $model, $split captions, $per videos each, temperature $t"
            "$bin" fidelity --checkpoint "models/$model.safetensors" --evaluator "$ev" \
                --videos-per-caption "$per" --captions "$split" --seed 1 --temperature "$t" \
                > "$out/$name.json"
        done
    done
done
echo "[fidelity] wrote $out"
