# Pinned versions and the cache location derived from them (sourced, not run).
TORCH_VERSION=2.11.0
ORT_VERSION=1.31.1
ONNX_VERSION=1.19.1
NUMPY_VERSION=2.3.5
SYNCDRAW_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/syncdraw"
SYNCDRAW_VENV="$SYNCDRAW_CACHE/venv-py311-torch$TORCH_VERSION-ort$ORT_VERSION-onnx$ONNX_VERSION"
