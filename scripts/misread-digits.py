#!/usr/bin/env python3
"""Draws the test digit images that the evaluator reads as another digit where they
stand clear of the other digit (the `<split>_images` lists that `evaluator accuracy
--misread FILE` writes) as one PNG strip, 4x enlarged, and prints which digit each
is and what it was read as (most often, other than itself).

    python3 scripts/misread-digits.py docs/runs/fidelity/evaluator-misread.json \\
        docs/images/evaluator-misread-digits.png

Images of both splits, each once, in image-index order. Standard library only.
"""
import gzip
import json
import struct
import sys
import zlib

DIGITS = "data/mnist_5k.csv.gz"
SCALE, PAD = 4, 2


def png(path, rows):
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main(misread_json, out_png):
    listed = json.load(open(misread_json))
    wanted = {}
    for key, entries in listed.items():
        if key.endswith("_images"):
            for e in entries:
                r = e["reading"]
                other = max((d for d in range(10) if d != r["digit"]), key=lambda d: r["read"][d])
                wanted[e["image"]] = (r["digit"], other, r["right"], r["frames"])
    if not wanted:
        sys.exit(f"{misread_json}: no misread images listed")
    lines = gzip.open(DIGITS, "rt").read().split("\n")
    tiles = []
    for image in sorted(wanted):
        values = [int(v) for v in lines[image].split(",")]
        if values[784] != wanted[image][0]:
            sys.exit(f"image {image}: label {values[784]} in {DIGITS}, {wanted[image][0]} in {misread_json}")
        tiles.append(values[:784])
    side = 28 + 2 * PAD
    rows = []
    for y in range(side):
        row = []
        for t in tiles:
            for x in range(side):
                inside = PAD <= y < 28 + PAD and PAD <= x < 28 + PAD
                row.append(t[(y - PAD) * 28 + (x - PAD)] if inside else 128)
        rows.append([v for v in row for _ in range(SCALE)])
    rows = [r for r in rows for _ in range(SCALE)]
    png(out_png, rows)
    print(f"{out_png}, left to right:")
    for i, (d, other, right, frames) in sorted(wanted.items()):
        print(f"  image {i}: a {d}, read as {d} in {right} of {frames} clear frames, most often else as {other}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
