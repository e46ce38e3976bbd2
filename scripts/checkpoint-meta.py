#!/usr/bin/env python3
"""Prints fields of a checkpoint's metadata (the meta.json tensor of its
safetensors file), space-separated, 0 for a field it lacks:

    python3 scripts/checkpoint-meta.py CHECKPOINT FIELD...
"""
import json
import struct
import sys


def meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        start, end = header["meta.json"]["data_offsets"]
        f.seek(8 + n + start)
        return json.loads(f.read(end - start))


if __name__ == "__main__":
    m = meta(sys.argv[1])
    print(" ".join(str(m.get(field, 0)) for field in sys.argv[2:]))
