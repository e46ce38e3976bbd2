#!/usr/bin/env bash
# One-time (and idempotent) set-up of everything syncdraw needs on Debian 12, as root:
#   - Debian packages: GStreamer 1.22 (with x264enc), python3-gi (PyGObject, for
#     benches/first_buffer.py; the Gst typelib comes with libgstreamer1.0-dev),
#     meson, ninja, python3-venv;
#   - a Python venv with torch==2.11.0 (for tch), onnxruntime==1.31.1 (for ort) and onnx,
#     kept in a per-user cache outside the work tree, keyed by the pinned versions;
#   - build-env.sh at the repository root, which every other script sources.
# First run: about 4 minutes (apt ~45 s, pip ~2.5 min, ~5 GB). Later runs: a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/pins.sh
. "$ROOT/scripts/pins.sh"

say() { printf '[setup] %s\n' "$*"; }
t0=$(date +%s)

# ---- Rust ------------------------------------------------------------------
# The toolchain is not installed here (rustup reaches outside the package
# registries); say clearly what is missing.
if ! command -v cargo >/dev/null 2>&1; then
  echo "[setup] error: cargo not found; install Rust 1.95 or newer (https://rustup.rs), then run this again" >&2
  exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 95 ]; then
  echo "[setup] error: $(rustc --version) is too old; syncdraw needs Rust 1.95 or newer" >&2
  exit 1
fi

# ---- Debian packages -------------------------------------------------------
APT_PKGS=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-plugins-base-apps
  python3-gi
  meson ninja-build python3-venv
)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages (about 45 s): ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: present"
fi

# ---- Python venv (torch for tch, onnxruntime for ort, onnx for checks) -----
if [ ! -f "$SYNCDRAW_VENV/.complete" ]; then
  say "creating the Python venv in $SYNCDRAW_VENV"
  say "first time only: downloads torch==$TORCH_VERSION with its CUDA libraries (~5 GB, about 2-3 minutes)"
  rm -rf "$SYNCDRAW_VENV"
  mkdir -p "$(dirname "$SYNCDRAW_VENV")"
  /usr/bin/python3 -m venv "$SYNCDRAW_VENV"
  "$SYNCDRAW_VENV/bin/pip" install -q --upgrade pip
  "$SYNCDRAW_VENV/bin/pip" install -q "torch==$TORCH_VERSION" "onnxruntime==$ORT_VERSION" \
    "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION"
  touch "$SYNCDRAW_VENV/.complete"
else
  say "Python venv: present ($SYNCDRAW_VENV)"
fi

# ONNX Runtime with CUDA where an NVIDIA GPU is present: the onnxruntime-gpu wheel
# (CUDA 13 build, same version, same library path) replaces the CPU-only one, so
# the element's execution-provider=auto can use CUDA. Its CUDA and cuDNN libraries
# come from the venv's torch wheel (nvidia-* packages).
if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
  if [ ! -f "$SYNCDRAW_VENV/.ort-gpu" ]; then
    say "NVIDIA GPU found: installing onnxruntime-gpu==$ORT_VERSION in place of onnxruntime"
    "$SYNCDRAW_VENV/bin/pip" uninstall -q -y onnxruntime
    "$SYNCDRAW_VENV/bin/pip" install -q "onnxruntime-gpu==$ORT_VERSION"
    touch "$SYNCDRAW_VENV/.ort-gpu"
  fi
  say "ONNX Runtime: onnxruntime-gpu==$ORT_VERSION (CUDA execution provider available)"
else
  say "ONNX Runtime: onnxruntime==$ORT_VERSION (CPU only: no NVIDIA GPU found)"
fi

TORCH_LIB="$SYNCDRAW_VENV/lib/python3.11/site-packages/torch/lib"
ORT_LIB="$SYNCDRAW_VENV/lib/python3.11/site-packages/onnxruntime/capi"
[ -d "$TORCH_LIB" ] || { echo "setup: torch libraries not found in $TORCH_LIB" >&2; exit 1; }
# With onnxruntime-gpu: the CUDA and cuDNN libraries of the torch wheel, for the
# CUDA execution provider.
CUDA_LIBS=""
if [ -f "$SYNCDRAW_VENV/.ort-gpu" ]; then
  for d in "$SYNCDRAW_VENV"/lib/python3.11/site-packages/nvidia/*/lib; do
    [ -d "$d" ] && CUDA_LIBS="$CUDA_LIBS:$d"
  done
fi

# ---- env file ----------------------------------------------------------------
cat > "$ROOT/build-env.sh" <<ENV
# Written by scripts/setup.sh; sourced by the other scripts. Do not edit.
export SYNCDRAW_VENV="$SYNCDRAW_VENV"
export PATH="$SYNCDRAW_VENV/bin:\$PATH"
export LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$TORCH_LIB$CUDA_LIBS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export ORT_LIB_DIR_HINT="$ORT_LIB"  # informational; the element finds ONNX Runtime by itself
export GST_PLUGIN_PATH="$ROOT/target/release\${GST_PLUGIN_PATH:+:\$GST_PLUGIN_PATH}"
ENV
say "wrote $ROOT/build-env.sh"
say "done in $(( $(date +%s) - t0 )) s"
