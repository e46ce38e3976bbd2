#!/usr/bin/env bash
# Training on a disk that fills up (docs/reliability.md): a small run writes its
# run directory on a small tmpfs; after its first checkpoints the tmpfs is filled
# to the last byte and the run is resumed. It must stop with an error that says
# which file could not be written and why, leave the last checkpoint intact
# (readable, at its step) and leave no temporary file behind; once space is freed,
# --resume continues from that checkpoint to the end. Needs root (mount). Not part
# of the tests or CI (under a minute).
#   sudo bash scripts/disk-full.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
cargo build --release --workspace
bin=$PWD/target/release/syncdraw-train
work=$(mktemp -d)
disk="$work/disk"
mkdir -p "$disk"
mount -t tmpfs -o size=4m tmpfs "$disk"
trap 'umount "$disk" 2> /dev/null; rm -rf "$work"' EXIT
args=(--threads 1 train --digits 1 --train-size 256 --test-size 64 --frames 4 --size 32
      --timesteps 4 --read-k 5 --write-k 5 --enc-size 64 --dec-size 64 --z-dim 8
      --batch 16 --checkpoint-every 10 --eval-every 0 --eval-videos 64
      --log-every 10 --cache-dir "$work/cache" --run-dir "$disk/run")
step_of() { "$bin" --threads 1 eval --checkpoint "$1" --limit 16 2> /dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])'; }

echo "[disk-full] 20 steps on a 4 MiB tmpfs"
"$bin" "${args[@]}" --steps 20 > /dev/null 2> "$work/first.log"
ckpt="$disk/run/checkpoint.safetensors"
before=$(sha256sum "$ckpt" | cut -d' ' -f1)
echo "[disk-full] checkpoint at step $(step_of "$ckpt"), $(stat -c %s "$ckpt") bytes; filling the disk"
dd if=/dev/zero of="$disk/filler" bs=64k 2> /dev/null || true
df -k "$disk" | tail -1

echo "[disk-full] resuming towards step 60 on the full disk"
if "$bin" "${args[@]}" --steps 60 --resume > /dev/null 2> "$work/full.log"; then
    echo "[disk-full] FAIL: the run did not stop on a full disk"; exit 1
fi
echo "[disk-full] the run stopped with:"
grep -m1 '^Error:' "$work/full.log" | sed 's/^/    /'
after=$(sha256sum "$ckpt" | cut -d' ' -f1)
[ "$before" = "$after" ] || { echo "[disk-full] FAIL: the checkpoint changed"; exit 1; }
step=$(step_of "$ckpt")
[ "$step" = 20 ] || { echo "[disk-full] FAIL: checkpoint at step $step, not 20"; exit 1; }
left=$(find "$disk/run" -name '.*.tmp' | wc -l)
[ "$left" = 0 ] || { echo "[disk-full] FAIL: $left temporary files left"; exit 1; }
echo "[disk-full] checkpoint intact (same bytes, step 20, loads), no temporary file left"

rm "$disk/filler"
"$bin" "${args[@]}" --steps 60 --resume > /dev/null 2> "$work/resumed.log"
echo "[disk-full] space freed: --resume reached step $(step_of "$ckpt")"
echo "[disk-full] PASS"
