#!/usr/bin/env bash
# The README's render command: sets everything up (scripts/setup.sh, idempotent),
# builds the plugin, and renders a caption with the bundled model to an MP4 file
# through gst-launch-1.0.
#   bash scripts/render.sh ["CAPTION" [OUT.mp4 [extra syncdrawsrc properties...]]]
set -euo pipefail
cd "$(dirname "$0")/.."
caption=${1:-digit 3 is moving up and down}
out=${2:-out.mp4}
shift $(( $# > 2 ? 2 : $# ))
bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
echo "[render] building the syncdraw plugin (release)"
cargo build --release -p gst-plugin-syncdraw
echo "[render] gst-launch-1.0 syncdrawsrc caption=\"$caption\" $* ! x264enc ! mp4mux ! filesink location=$out"
gst-launch-1.0 -q syncdrawsrc caption="$caption" "$@" ! x264enc ! mp4mux ! filesink location="$out"
echo "[render] wrote $out"
