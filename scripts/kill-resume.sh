#!/usr/bin/env bash
# Training that survives kill -9 (docs/reliability.md): a small training run is
# killed with SIGKILL at random moments KILLS times (default 20) and resumed with
# --resume after each kill; every resume must succeed and start from the last
# checkpoint, and the final weights and optimizer state must equal, bit for bit,
# those of the same run trained without interruption. Prints what it did. Not part
# of the tests or CI (a few minutes on 2 cores).
#   bash scripts/kill-resume.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
cargo build --release --workspace
bin=$PWD/target/release/syncdraw-train
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
steps=1200
args=(--threads 1 train --digits 1 --train-size 256 --test-size 64 --frames 4 --size 32
      --timesteps 4 --read-k 5 --write-k 5 --enc-size 64 --dec-size 64 --z-dim 8
      --batch 16 --steps "$steps" --checkpoint-every 10 --eval-every 0 --eval-videos 64
      --log-every 10 --cache-dir "$work/cache")

echo "[kill-resume] uninterrupted run of $steps steps"
"$bin" "${args[@]}" --run-dir "$work/whole" > /dev/null 2> "$work/whole.log"

step_of() { # the step recorded in a checkpoint's metadata
    python3 scripts/checkpoint-meta.py "$1" step
}

run="$work/killed"
done_kills=0 resumes=0 lost=0 last=0
while :; do
    resume=()
    [ -f "$run/checkpoint.safetensors" ] && resume=(--resume)
    "$bin" "${args[@]}" --run-dir "$run" "${resume[@]}" > /dev/null 2>> "$work/killed.log" &
    pid=$!
    if [ "$done_kills" -lt "$kills" ]; then
        sleep "$(( RANDOM % 3 + 1 )).$(( RANDOM % 10 ))"
        if kill -9 "$pid" 2> /dev/null; then
            wait "$pid" 2> /dev/null || true
            done_kills=$((done_kills + 1))
            if [ -f "$run/checkpoint.safetensors" ]; then
                step=$(step_of "$run/checkpoint.safetensors")
                [ "$step" -ge "$last" ] || { echo "checkpoint went back from $last to $step"; exit 1; }
                last=$step
            fi
            continue
        fi
    fi
    wait "$pid" || { echo "[kill-resume] a resumed run failed:"; tail -5 "$work/killed.log"; exit 1; }
    resumes=$((resumes + 1))
    break
done
echo "[kill-resume] $done_kills kills; checkpoints never went back; the last one before the final run was at step $last of $steps"
python3 - "$work/whole/checkpoint.safetensors" "$run/checkpoint.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    h = json.loads(data[8:8 + n])
    return {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in h.items() if k != "__metadata__" and k != "meta.json"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys(), "different tensors"
diff = [k for k in a if a[k] != b[k]]
if diff:
    sys.exit(f"[kill-resume] FAILED: {len(diff)} of {len(a)} tensors differ, e.g. {diff[:3]}")
print(f"[kill-resume] final weights and optimizer state equal the uninterrupted run's "
      f"({len(a)} tensors, bit for bit)")
PY
