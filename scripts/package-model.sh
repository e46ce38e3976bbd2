#!/usr/bin/env bash
# Packages trained weights as a shipped model: models/NAME.safetensors (weights
# without optimizer state), models/NAME.onnx (the exported decoder) and pictures
# under docs/images/ (samples.gif, drawing.gif, drawing.png).
#   bash scripts/package-model.sh NAME CHECKPOINT
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: package-model.sh NAME CHECKPOINT}
ckpt=${2:?usage: package-model.sh NAME CHECKPOINT}
# shellcheck source=/dev/null
source build-env.sh
bin=target/release/syncdraw-train
mkdir -p models docs/images
"$bin" weights --checkpoint "$ckpt" --out "models/$name.safetensors"
"$bin" export --checkpoint "models/$name.safetensors" --out "models/$name.onnx"
tmp=$(mktemp -d)
"$bin" sample --checkpoint "models/$name.safetensors" --count 4 --seed 1 --out-dir "$tmp"
for f in samples.gif drawing.gif drawing.png; do cp "$tmp/$f" "docs/images/$name-$f"; done
rm -rf "$tmp"
