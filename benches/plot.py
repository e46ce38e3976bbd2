"""A dependency-free PNG line plot (log-log) for the benchmark: frames/s against
batch size, one line per implementation. Only zlib and struct are used, so the
benchmark needs no matplotlib.

    python3 benches/plot.py benches/results.json benches/frames_per_s.png
"""
import json
import math
import struct
import sys
import zlib

# 5x7 bitmap font, rows top to bottom, '#' = ink. Only the characters the plot uses.
_FONT = {
    "0": [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
    "1": ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    "2": [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    "3": ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
    "4": ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
    "5": ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
    "6": ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
    "7": ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
    "8": [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
    "9": [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
    "a": ["     ", "     ", " ### ", "    #", " ####", "#   #", " ####"],
    "b": ["#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#### "],
    "c": ["     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### "],
    "d": ["    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####"],
    "e": ["     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "],
    "f": ["  ## ", " #  #", " #   ", "###  ", " #   ", " #   ", " #   "],
    "g": ["     ", " ####", "#   #", "#   #", " ####", "    #", " ### "],
    "h": ["#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#   #"],
    "i": ["  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "],
    "k": ["#    ", "#    ", "#  # ", "# #  ", "##   ", "# #  ", "#  # "],
    "l": [" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    "m": ["     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #"],
    "n": ["     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #"],
    "o": ["     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "],
    "p": ["     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "],
    "r": ["     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    "],
    "s": ["     ", "     ", " ####", "#    ", " ### ", "    #", "#### "],
    "t": [" #   ", " #   ", "###  ", " #   ", " #   ", " #  #", "  ## "],
    "u": ["     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #"],
    "v": ["     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  "],
    "x": ["     ", "     ", "#   #", " # # ", "  #  ", " # # ", "#   #"],
    "y": ["     ", "#   #", "#   #", "#   #", " ####", "    #", " ### "],
    "w": ["     ", "     ", "#   #", "#   #", "# # #", "# # #", " # # "],
    "z": ["     ", "     ", "#####", "   # ", "  #  ", " #   ", "#####"],
    "C": [" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "],
    "P": ["#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "],
    "U": ["#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "],
    "O": [" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "],
    "R": ["#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"],
    "T": ["#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "],
    "/": ["    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "],
    ".": ["     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "],
    ",": ["     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "],
    "(": ["   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "],
    ")": [" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "],
    "-": ["     ", "     ", "     ", "#####", "     ", "     ", "     "],
    "=": ["     ", "     ", "#####", "     ", "#####", "     ", "     "],
    " ": ["     "] * 7,
}

COLOURS = {"element": (31, 119, 180), "ort": (255, 127, 14), "pytorch": (44, 160, 44)}


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray([255] * (w * h * 3))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0, y0, x1, y1, c):
        for y in range(int(y0), int(y1) + 1):
            for x in range(int(x0), int(x1) + 1):
                self.set(x, y, c)

    def line(self, x0, y0, x1, y1, c, width=1):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        r = width // 2
        for i in range(n + 1):
            t = i / n
            x, y = round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t)
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    self.set(x + dx, y + dy, c)

    def text(self, x, y, s, c=(0, 0, 0), scale=2):
        for ch in s:
            glyph = _FONT.get(ch) or _FONT.get(ch.lower()) or _FONT[" "]
            for gy, row in enumerate(glyph):
                for gx, v in enumerate(row):
                    if v == "#":
                        self.rect(x + gx * scale, y + gy * scale,
                                  x + gx * scale + scale - 1, y + gy * scale + scale - 1, c)
            x += 6 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(tag, data):
            return (struct.pack(">I", len(data)) + tag + data
                    + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                    + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s, scale=2):
    return len(s) * 6 * scale


def plot(results, path, title=None):
    rows = results["generation"]
    impls = [i for i in ("element", "ort", "pytorch") if any(r["impl"] == i for r in rows)]
    batches = sorted({r["batch"] for r in rows})
    values = [r["frames_per_s"] for r in rows if r["frames_per_s"] > 0]
    W, H = 900, 600
    left, right, top, bottom = 110, 200, 90, 80
    cv = Canvas(W, H)
    x_lo, x_hi = math.log10(min(batches)) - 0.15, math.log10(max(batches)) + 0.15
    y_lo = math.floor(math.log10(min(values)))
    y_hi = math.ceil(math.log10(max(values)))
    if y_hi == y_lo:
        y_hi += 1

    def px(b):
        return left + (math.log10(b) - x_lo) / (x_hi - x_lo) * (W - left - right)

    def py(v):
        return H - bottom - (math.log10(v) - y_lo) / (y_hi - y_lo) * (H - top - bottom)

    grid, axis = (225, 225, 225), (0, 0, 0)
    for e in range(y_lo, y_hi + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if 10 ** y_lo <= v <= 10 ** y_hi:
                y = py(v)
                cv.line(left, y, W - right, y, grid if m == 1 else (242, 242, 242))
        y = py(10 ** e)
        label = str(10 ** e) if e >= 0 else f"{10.0 ** e:g}"
        cv.text(left - 12 - text_width(label), y - 7, label)
    for b in batches:
        x = px(b)
        cv.line(x, top, x, H - bottom, grid)
        cv.text(x - text_width(str(b)) / 2, H - bottom + 12, str(b))
    cv.line(left, H - bottom, W - right, H - bottom, axis, 2)
    cv.line(left, top, left, H - bottom, axis, 2)
    cv.text((left + W - right) / 2 - text_width("batch size") / 2, H - bottom + 45, "batch size")
    cv.text(10, top - 35, "frames/s (log scale)")
    dev = next((r.get("device", "cpu") for r in rows if r["impl"] == "element"), "cpu")
    t = title or ("syncdraw generation on CPU, frames/s" if dev == "cpu"
                  else f"syncdraw generation, frames/s (element on {dev})")
    cv.text(left, 15, t)
    for k, impl in enumerate(impls):
        col = COLOURS[impl]
        pts = sorted((r["batch"], r["frames_per_s"]) for r in rows if r["impl"] == impl)
        for (b0, v0), (b1, v1) in zip(pts, pts[1:]):
            cv.line(px(b0), py(v0), px(b1), py(v1), col, 3)
        for b, v in pts:
            cv.rect(px(b) - 4, py(v) - 4, px(b) + 4, py(v) + 4, col)
        ly = top + 20 + 30 * k
        cv.rect(W - right + 20, ly, W - right + 44, ly + 12, col)
        cv.text(W - right + 52, ly, impl)
    cv.png(path)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        plot(json.load(f), sys.argv[2])
