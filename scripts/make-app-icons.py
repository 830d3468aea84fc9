#!/usr/bin/env python3
"""Draws the household app's icons (PNG, no dependency beyond Python):
a hearth's flame on a warm square. Run from the repository root; writes
messaging-plugin/web/icons/. The PNGs are committed; this is how they were
made.

    python3 scripts/make-app-icons.py
"""
import struct
import zlib
from pathlib import Path

OUT = Path("messaging-plugin/web/icons")
BACKGROUND = (154, 52, 18)  # #9a3412
FLAME = (255, 237, 213)  # #ffedd5
CORE = (251, 146, 60)  # #fb923c


def inside_flame(x, y, scale):
    """Whether (x, y) in [-1, 1]^2 (y down) is in the flame, drawn at
    `scale` of the icon: a teardrop (a circle below, a point above)."""
    x, y = x / scale, y / scale
    cy, r = 0.25, 0.5
    if (x * x + (y - cy) ** 2) <= r * r:
        return True
    # The point: between the circle's tangents up to (0, -0.85).
    if -0.85 <= y <= cy:
        t = (y + 0.85) / (cy + 0.85)
        return abs(x) <= r * t ** 1.4
    return False


def pixel(x, y, maskable):
    # Rounded square (full bleed for a maskable icon: the system crops it).
    corner = 0.0 if maskable else 0.35
    ax, ay = abs(x), abs(y)
    if not maskable and ax > 1 - corner and ay > 1 - corner:
        dx, dy = ax - (1 - corner), ay - (1 - corner)
        if dx * dx + dy * dy > corner * corner:
            return None
    scale = 0.5 if maskable else 0.62
    if inside_flame(x, y + 0.05, scale * 0.55):
        return CORE
    if inside_flame(x, y, scale):
        return FLAME
    return BACKGROUND


def draw(size, maskable):
    samples = 4
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(samples):
                for sx in range(samples):
                    x = ((px + (sx + 0.5) / samples) / size) * 2 - 1
                    y = ((py + (sy + 0.5) / samples) / size) * 2 - 1
                    colour = pixel(x, y, maskable)
                    if colour is not None:
                        acc[0] += colour[0]
                        acc[1] += colour[1]
                        acc[2] += colour[2]
                        acc[3] += 255
            n = samples * samples
            alpha = acc[3] // n
            if alpha:
                row += bytes([acc[0] * 255 // acc[3], acc[1] * 255 // acc[3], acc[2] * 255 // acc[3], alpha])
            else:
                row += bytes([0, 0, 0, 0])
        rows.append(bytes(row))
    return png(size, b"".join(rows))


def png(size, raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


OUT.mkdir(parents=True, exist_ok=True)
for name, size, maskable in [("icon-192.png", 192, False), ("icon-512.png", 512, False),
                             ("maskable-512.png", 512, True)]:
    (OUT / name).write_bytes(draw(size, maskable))
    print(OUT / name)
