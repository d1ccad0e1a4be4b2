"""A motion dataset made differently from the built-in one, to check that the tiny preset
learns on data it was not designed on (other motions, frame sizes, frame rates, textures).

    python scripts/heldout_motion.py OUT [--train-per-class 10] [--test-per-class 6] [--seed 0]
    prp-deploy train --preset tiny --data OUT --dataset ucf101

Six classes, none of them a built-in motion: a diagonal drift up-right and one down-left, a
bar spinning about its centre, a ball falling with gravity and bouncing, a zigzag, and a
pulsing blob. Videos are 320×240 or 240×180 at 15 or 30 fps, with a textured background,
a slow global camera drift and a second, static-looking distractor object. UCF101 layout.
Not used by the project's own tuning: it exists to be run, as a user would, after the
preset was fixed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("DriftUpRight", "DriftDownLeft", "Spin", "FallBounce", "Zigzag", "Pulse")


def texture(rng, w, h):
    base = rng.uniform(0, 255, size=(h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    t = cv2.resize(base, (w + 64, h + 64), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(t, (0, 0), 2) * 0.6 + 50


def render(cls, rng, w, h, fps, n):
    bg = texture(rng, w, h)
    colour = rng.uniform(0, 255, 3)
    distractor = (rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0, 255, 3))
    r = rng.uniform(0.06, 0.1) * h
    v = rng.uniform(60, 140) * h / 240 / fps  # pixels per frame: 60-140 px/s at 240 lines
    x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    cam = rng.uniform(-0.3, 0.3, 2)
    vy, g = 0.0, 900 * h / 240 / fps**2
    frames = []
    for t in range(n):
        ox, oy = 32 + cam[0] * t, 32 + cam[1] * t
        ox, oy = int(np.clip(ox, 0, 63)), int(np.clip(oy, 0, 63))
        f = bg[oy : oy + h, ox : ox + w].copy()
        cv2.circle(f, (int(distractor[0]), int(distractor[1])), int(r * 0.8), distractor[2].tolist(), -1, cv2.LINE_AA)
        if cls == "DriftUpRight":
            px, py = (x + v * t * 0.7) % w, (y - v * t * 0.7) % h
        elif cls == "DriftDownLeft":
            px, py = (x - v * t * 0.7) % w, (y + v * t * 0.7) % h
        elif cls == "FallBounce":
            vy += g
            y += vy
            if y > h - r:
                y, vy = h - r, -abs(vy) * 0.9
            px, py = x, y
        elif cls == "Zigzag":
            px = (x + v * t) % w
            py = y + 0.15 * h * (2 * abs((t * v / (0.3 * h)) % 2 - 1) - 1)
        else:
            px, py = x, y
        if cls == "Spin":
            a = t * v / (2 * r)
            d = np.array([math.cos(a), math.sin(a)]) * 2.5 * r
            cv2.line(f, (int(px - d[0]), int(py - d[1])), (int(px + d[0]), int(py + d[1])), colour.tolist(), max(2, int(r / 2)), cv2.LINE_AA)
        elif cls == "Pulse":
            rr = r * (1.4 + 0.8 * math.sin(2 * math.pi * t * v / (6 * r)))
            cv2.circle(f, (int(px), int(py)), int(rr), colour.tolist(), -1, cv2.LINE_AA)
        else:
            cv2.circle(f, (int(px), int(py)), int(r), colour.tolist(), -1, cv2.LINE_AA)
        f += rng.normal(0, 4, f.shape).astype(np.float32)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--train-per-class", type=int, default=10)
    ap.add_argument("--test-per-class", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    lists = a.out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for label, cls in enumerate(CLASSES):
        (a.out / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(a.train_per_class + a.test_per_class):
            group = 8 + i if i < a.train_per_class else 1 + (i - a.train_per_class)  # split 1 tests groups 1-7
            rel = f"{cls}/v_{cls}_g{group:02d}_c01.avi"
            w, h = (320, 240) if rng.random() < 0.5 else (240, 180)
            fps = 30.0 if rng.random() < 0.5 else 15.0
            n = int(rng.integers(90, 180))
            writer = cv2.VideoWriter(str(a.out / "UCF-101" / rel), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
            for f in render(cls, rng, w, h, fps, n):
                writer.write(f)
            writer.release()
            (train if i < a.train_per_class else test).append((rel, label))
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    (lists / "trainlist01.txt").write_text("".join(f"{r} {l + 1}\n" for r, l in train))
    (lists / "testlist01.txt").write_text("".join(f"{r}\n" for r, _ in test))
    print(f"wrote {len(train)} train / {len(test)} test videos of {len(CLASSES)} classes to {a.out}")


if __name__ == "__main__":
    main()
