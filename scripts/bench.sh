#!/usr/bin/env bash
# The benchmark (docs/benchmarks.md, issue 6): generation frames/s of syncdrawsrc,
# bare ONNX Runtime and eager PyTorch at batch 1, 16 and 256; NULL -> first buffer;
# training videos/s of syncdraw-train against eager PyTorch; FLOPs and peak.
# One run, one machine, one set of weights. Writes benches/results.json and
# benches/frames_per_s.png. Not a test: CI does not run it. Takes 10-15 minutes on a
# 2-core CPU (longer on a loaded machine).
#   bash scripts/bench.sh [--onnx M.onnx --checkpoint M.safetensors] [bench.py options]
# Defaults: models/mnist1-captions.onnx and models/mnist1-captions.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
echo "[bench] building syncdraw-train and the plugin (release)"
cargo build --release --workspace
exec python benches/bench.py "$@"
