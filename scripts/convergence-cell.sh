#!/usr/bin/env bash
# Trains one convergence cell of docs/results.md in chunks of 500 steps, each
# ending with an evaluation on all 2,000 test videos, until the cell's CPU-time
# cap or a STOP file. Continues on any machine from what the repository holds.
#
#   bash scripts/convergence-cell.sh RUN_DIR START [train options of a fresh run]
#
# START is where the run begins when RUN_DIR has no checkpoint yet:
#   fresh        a new run set up by the options that follow (e.g. --digits 2 --binarize)
#   WEIGHTS      committed weights (docs/runs/*/weights-step-N.safetensors):
#                `train --init-from` with a fresh optimizer and seed 2, so its
#                batches are not those the weights were trained on first
# When RUN_DIR holds a checkpoint the run is resumed from it and START is ignored.
#
# Environment: CAP_HOURS (default 6: the training issue's cap per cell, counted in
# the checkpoint's train_seconds, which --init-from carries over), CHUNK (500),
# MAX_STEP (stop once the run's own step count reaches it; none by default),
# THREADS (libtorch threads, default 1), SYNCDRAW_TRAIN (the binary, default
# target/release/syncdraw-train). `touch RUN_DIR/STOP` ends it after the chunk.
# LR_LADDER (e.g. "1e-3 3e-4 1e-4"; off by default): lower the learning rate on
# a plateau. When the test NLL of the chunks trained at the present rate gained
# less than PLATEAU_PCT (default 2) % over the last two chunks (1,000 steps with
# the default CHUNK), the next chunk resumes at the next rate of the ladder
# (`train --resume --lr`; the checkpoint records it, so later chunks keep it).
# Each change goes to RUN_DIR/lr.log as "STEP RATE" (the run's own step count).
# EMA_DECAY (off by default): keep a moving average of the weights with this
# decay (`train --ema-decay`), evaluated beside them at every chunk's end
# (`test_nll_average` in metrics.jsonl); given to a resumed run, it starts one.
# The checkpoint is written over every 100 steps, so the weights of every chunk's
# end (where the test NLL is taken) are kept as RUN_DIR/weights-step-N.safetensors
# (N the run's own step count; about 12 MB each): commit the one a figure is of.
# The same by hand:
#   syncdraw-train weights --checkpoint RUN_DIR/checkpoint.safetensors --out W
# (with --average, the moving average where the run keeps one)
set -euo pipefail
run=${1:?usage: convergence-cell.sh RUN_DIR fresh|WEIGHTS [train options]}
start=${2:?usage: convergence-cell.sh RUN_DIR fresh|WEIGHTS [train options]}
shift 2
bin=${SYNCDRAW_TRAIN:-target/release/syncdraw-train}
cap_s=$(python3 -c "print(int(float('${CAP_HOURS:-6}') * 3600))")
chunk=${CHUNK:-500}
threads=${THREADS:-1}
common=(--log-every 50 --eval-every "$chunk" --eval-videos 200 --checkpoint-every 100)
if [ -n "${EMA_DECAY:-}" ]; then
    common+=(--ema-decay "$EMA_DECAY")
fi

meta=$(cd "$(dirname "$0")" && pwd)/checkpoint-meta.py
plateau=$(cd "$(dirname "$0")" && pwd)/lr-plateau.py

# The weights of the checkpoint's step, unless they are kept already.
keep_weights() {
    [ -e "$run/checkpoint.safetensors" ] || return 0
    local at
    at=$(python3 "$meta" "$run/checkpoint.safetensors" step)
    [ -e "$run/weights-step-$at.safetensors" ] ||
        "$bin" weights --checkpoint "$run/checkpoint.safetensors" --out "$run/weights-step-$at.safetensors"
}

while [ ! -e "$run/STOP" ]; do
    if [ ! -e "$run/checkpoint.safetensors" ]; then
        if [ "$start" = fresh ]; then
            echo "[cell] $(date -u +%H:%M) fresh run: $*"
            "$bin" --threads "$threads" train --run-dir "$run" --steps "$chunk" "${common[@]}" "$@"
        else
            echo "[cell] $(date -u +%H:%M) from $start (fresh optimizer, seed 2)"
            "$bin" --threads "$threads" train --run-dir "$run" --init-from "$start" --seed 2 \
                --steps "$chunk" "${common[@]}" "$@"
        fi
        keep_weights
        continue
    fi
    read -r step secs before < <(python3 "$meta" "$run/checkpoint.safetensors" step train_seconds steps_before)
    secs=${secs%.*}
    echo "[cell] $(date -u +%H:%M) step $step (+$before before), ${secs} s of training"
    if [ "$secs" -ge "$cap_s" ]; then
        echo "[cell] the cap of $cap_s s is reached: stopped"
        exit 0
    fi
    if [ -n "${MAX_STEP:-}" ] && [ "$step" -ge "$MAX_STEP" ]; then
        echo "[cell] step $MAX_STEP reached: stopped"
        exit 0
    fi
    next=$(( (step / chunk + 1) * chunk ))
    # the last chunk stops at the cap (a checkpoint and a full evaluation at the stop)
    minutes=$(python3 -c "print(max(1.0, ($cap_s - $secs) / 60))")
    lr=()
    if [ -n "${LR_LADDER:-}" ]; then
        new=$(python3 "$plateau" "$run" "${PLATEAU_PCT:-2}" $LR_LADDER)
        if [ -n "$new" ]; then
            echo "[cell] $(date -u +%H:%M) plateau: learning rate $new from step $step"
            echo "$step $new" >> "$run/lr.log"
            lr=(--lr "$new")
        fi
    fi
    "$bin" --threads "$threads" train --run-dir "$run" --resume --steps "$next" \
        --max-minutes "$minutes" "${common[@]}" "${lr[@]}"
    keep_weights
done
echo "[cell] $run/STOP found: stopped"
