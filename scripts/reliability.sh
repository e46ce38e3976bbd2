#!/usr/bin/env bash
# The long reliability runs of docs/reliability.md: the soak, state cycling and
# concurrent caption changes of tests/reliability.rs with the counts of the issue
# (1,000,000 frames at batch 1 and 16; 1,000 cycles; 10,000 caption changes), each
# printing its figures. Not part of the tests or CI (several minutes on 2 cores).
#   bash scripts/reliability.sh            (override a count with its variable, e.g.
#   SYNCDRAW_SOAK_FRAMES=100000 bash scripts/reliability.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-env.sh ] || bash scripts/setup.sh
# shellcheck source=/dev/null
source build-env.sh
export SYNCDRAW_SOAK_FRAMES=${SYNCDRAW_SOAK_FRAMES:-1000000}
export SYNCDRAW_CYCLES=${SYNCDRAW_CYCLES:-1000}
export SYNCDRAW_CAPTION_CHANGES=${SYNCDRAW_CAPTION_CHANGES:-10000}
exec cargo test --release -p gst-plugin-syncdraw --test reliability -- --nocapture --test-threads 1
