#!/usr/bin/env bash
# Trains the cells of the paper's Table 1 (variants x {1,2} digits x {captions, none})
# with one equal budget of optimizer steps, all at once, then evaluates each on the
# full test split. This is the command behind docs/results.md and the model cards.
#
#   scripts/train-models.sh STEPS RUN_ROOT [CELL...]
#
# A CELL is VARIANT-DIGITS-CAPTIONS, e.g. syncdraw-1-true; default: all 12.
# Environment: SYNCDRAW_TRAIN (binary, default target/release/syncdraw-train),
# DEVICE (auto|cpu|cuda), THREADS (libtorch threads per run), MAX_MINUTES (safety cap
# per run; a run that hits it stops early and says so in its summary), IWAE_K
# (importance samples for the final evaluation of syncdraw cells, default 100),
# MODEL_ARGS (model structure; default the paper's as docs/runs/table1 used it:
# "--caption-encoder words --decoder joint --bounded-windows false"; set it to ""
# for this release's defaults: grammar slots, what-where decoder, bounded windows).
# Runs resume from RUN_ROOT when started again.
set -euo pipefail
steps=${1:?usage: train-models.sh STEPS RUN_ROOT [CELL...]}
root=${2:?usage: train-models.sh STEPS RUN_ROOT [CELL...]}
shift 2
bin=${SYNCDRAW_TRAIN:-target/release/syncdraw-train}
device=${DEVICE:-auto}
threads=${THREADS:-1}
iwae_k=${IWAE_K:-100}
cells=("$@")
if [ ${#cells[@]} -eq 0 ]; then
    for v in syncdraw global baseline; do
        for d in 1 2; do
            for c in true false; do cells+=("$v-$d-$c"); done
        done
    done
fi
mkdir -p "$root"

# The two data sets first, so the runs do not all generate them at once.
"$bin" data --digits 1 >/dev/null &
"$bin" data --digits 2 >/dev/null &
wait

for cell in "${cells[@]}"; do
    IFS=- read -r variant digits captions <<<"$cell"
    args=(train --run-dir "$root/$cell" --variant "$variant" --digits "$digits" --captions "$captions"
        --steps "$steps" --device "$device" --threads "$threads" --resume
        --checkpoint-every 500 --eval-every "${EVAL_EVERY:-1000}" --eval-videos 2000 --log-every 200)
    if [ -n "${MAX_MINUTES:-}" ]; then args+=(--max-minutes "$MAX_MINUTES"); fi
    # shellcheck disable=SC2206
    args+=(${MODEL_ARGS---caption-encoder words --decoder joint --bounded-windows false})
    echo "[train-models] $bin ${args[*]}"
    "$bin" "${args[@]}" >"$root/$cell.summary.json" 2>"$root/$cell.log" &
done
wait

for cell in "${cells[@]}"; do
    k=()
    case $cell in syncdraw-*) k=(--iwae-k "$iwae_k") ;; esac
    "$bin" eval --checkpoint "$root/$cell/checkpoint.safetensors" --device "$device" "${k[@]}" \
        >"$root/$cell.eval.json" 2>>"$root/$cell.log" &
done
wait
echo "[train-models] done: $root/*.eval.json"
