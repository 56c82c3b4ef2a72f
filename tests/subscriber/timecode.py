#!/usr/bin/env python3
"""A wall-clock time code drawn into raw I420 frames, and read back from decoded ones.

Glass-to-glass latency (`scripts/bench --scenarios latency`): a live source whose every frame
carries the moment it was made, read back from the picture a viewer decoded. The code survives
lossy compression because it is coarse: two rows of 32 square blocks at the top of the
picture (side `height // 18`: 20 px at 360p, 40 at 720p, 60 at 1080p), each black (luma 16)
or white (235), read from the mean of its inner half. 64 bits: the unix time of the frame in
milliseconds modulo 2**41 (69 years), the frame's number modulo 2**15, and an 8-bit check
(CRC-32's low byte) that rejects a misread picture.

As a program it is the source: it writes raw I420 frames to stdout in real time (each frame's
code written just before the frame is), for a gst-launch-1.0 process that parses them and
serves them to live pipelines (scripts/bench.d/latency.py: fdsrc, rawvideoparse, shmsink).

Scenes: `flat` (eight flat colour bars, as a test picture) and `detailed` (a static texture of
fine random cells, as a security camera's view of a street: its keyframes are many times the
size of a P-frame), each with a moving square. A frame that would be late by more than one
interval is skipped (the numbers jump), so the source never falls behind real time.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import zlib

import numpy as np

BITS = 64
PER_ROW = 32
MS_BITS = 41
N_BITS = 15
BLACK, WHITE = 16, 235


def block_side(height: int) -> int:
    return max(4, height // 18)


def encode_bits(ms: int, n: int) -> list[int]:
    ms &= (1 << MS_BITS) - 1
    n &= (1 << N_BITS) - 1
    payload = (ms << N_BITS) | n  # 56 bits
    raw = payload.to_bytes(7, "big")
    word = (payload << 8) | (zlib.crc32(raw) & 0xFF)
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def decode_bits(bits: list[int]) -> tuple[int, int] | None:
    word = 0
    for b in bits:
        word = (word << 1) | (1 if b else 0)
    payload, check = word >> 8, word & 0xFF
    if zlib.crc32(payload.to_bytes(7, "big")) & 0xFF != check:
        return None
    return payload >> N_BITS, payload & ((1 << N_BITS) - 1)


def draw(y: np.ndarray, ms: int, n: int) -> None:
    """Write the code of (ms, n) into the luma plane `y` (height x width, uint8)."""
    b = block_side(y.shape[0])
    for i, bit in enumerate(encode_bits(ms, n)):
        r, c = divmod(i, PER_ROW)
        y[r * b:(r + 1) * b, c * b:(c + 1) * b] = WHITE if bit else BLACK


def read(y: np.ndarray) -> tuple[int, int] | None:
    """(unix ms modulo 2**41, frame number) from a decoded luma plane, or None."""
    h, w = y.shape
    b = block_side(h)
    if b * PER_ROW > w or 2 * b > h:
        return None
    q = b // 4
    band = y[:2 * b, :PER_ROW * b].reshape(2, b, PER_ROW, b)
    means = band[:, q:b - q, :, q:b - q].mean(axis=(1, 3))  # (2, PER_ROW)
    bits = [int(v > (BLACK + WHITE) / 2) for v in means.reshape(-1)]
    return decode_bits(bits)


def unwrap_ms(code_ms: int, near_ms: float) -> float:
    """The unix time in ms whose low 41 bits are `code_ms`, closest to `near_ms`."""
    period = 1 << MS_BITS
    base = int(near_ms) - (int(near_ms) % period)
    best = base + code_ms
    for cand in (best - period, best + period):
        if abs(cand - near_ms) < abs(best - near_ms):
            best = cand
    return float(best)


# ------------------------------------------------------------------------------ the source

BARS = [(235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
        (106, 202, 222), (81, 90, 240), (41, 240, 110), (16, 128, 128)]


def background(w: int, h: int, scene: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cw, ch = w // 2, h // 2
    if scene == "flat":
        y = np.zeros((h, w), np.uint8)
        u = np.zeros((ch, cw), np.uint8)
        v = np.zeros((ch, cw), np.uint8)
        for i, (yy, uu, vv) in enumerate(BARS):
            x0, x1 = i * w // len(BARS), (i + 1) * w // len(BARS)
            y[:, x0:x1] = yy
            u[:, x0 // 2:x1 // 2] = uu
            v[:, x0 // 2:x1 // 2] = vv
        return y, u, v
    # detailed: random 2x2 luma cells over a slow gradient, random 8x8 chroma cells
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 120, size=((h + 1) // 2, (w + 1) // 2), dtype=np.int32)
    fine = np.kron(cells, np.ones((2, 2), np.int32))[:h, :w]
    grad = (np.arange(w)[None, :] * 80 // w + np.arange(h)[:, None] * 40 // h)
    y = np.clip(40 + fine + grad, 16, 235).astype(np.uint8)
    cu = rng.integers(90, 166, size=((ch + 3) // 4, (cw + 3) // 4), dtype=np.int32)
    cv = rng.integers(90, 166, size=((ch + 3) // 4, (cw + 3) // 4), dtype=np.int32)
    u = np.kron(cu, np.ones((4, 4), np.int32))[:ch, :cw].astype(np.uint8)
    v = np.kron(cv, np.ones((4, 4), np.int32))[:ch, :cw].astype(np.uint8)
    return y, u, v


def generate(args: argparse.Namespace) -> int:
    w, h, fps = args.width, args.height, args.fps
    if w % 2 or h % 2 or block_side(h) * PER_ROW > w:
        sys.stderr.write("timecode: width and height must be even, and width >= 32 * height / 18\n")
        return 2
    by, bu, bv = background(w, h, args.scene, args.seed)
    side = h // 6
    frame = np.empty(w * h * 3 // 2, np.uint8)
    y = frame[:w * h].reshape(h, w)
    u = frame[w * h:w * h + w * h // 4].reshape(h // 2, w // 2)
    v = frame[w * h + w * h // 4:].reshape(h // 2, w // 2)
    out = sys.stdout.buffer
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    interval = 1.0 / fps
    t0 = time.monotonic()
    end = t0 + args.seconds if args.seconds else None
    n = 0
    while end is None or time.monotonic() < end:
        due = t0 + n * interval
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        elif wait < -interval:
            n = int((time.monotonic() - t0) / interval) + 1  # late: skip, never fall behind
            continue
        y[:] = by
        u[:] = bu
        v[:] = bv
        # the moving square: across the picture and back, 4 s a way, below the code
        span = w - side
        pos = (n * 4 * span // (4 * fps)) % (2 * span) if span > 0 else 0
        x = pos if pos < span else 2 * span - pos
        top = h // 2 - side // 2
        y[top:top + side, x:x + side] = 235 if n % 2 else 200
        u[top // 2:(top + side) // 2, x // 2:(x + side) // 2] = 60
        v[top // 2:(top + side) // 2, x // 2:(x + side) // 2] = 200
        draw(y, int(time.time() * 1000), n)
        try:
            out.write(frame.data)
            out.flush()
        except (BrokenPipeError, OSError):
            return 0
        n += 1
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--scene", choices=["flat", "detailed"], default="detailed")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    return generate(p.parse_args(argv))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        os._exit(0)
