#!/usr/bin/env bash
# The README's test command: sets everything up (scripts/setup.sh, idempotent),
# builds, and runs every test of the workspace: the training crate (tch on CPU)
# and the GStreamer plugin (real pipelines on ONNX Runtime). No GPU needed.
#   bash scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
echo "[test] building the plugin and syncdraw-train (release)"
cargo build --release --workspace
echo "[test] cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast "$@"
echo "[test] all tests passed in $(( $(date +%s) - started )) s"
