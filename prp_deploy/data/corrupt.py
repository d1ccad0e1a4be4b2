"""Damaged videos on purpose, for fuzzing the readers: the ways real files break (cut short,
bits flipped, a header from another file, a zeroed region). Deterministic from a seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("truncate", "flip", "splice", "zero")


@dataclass(frozen=True)
class Corruption:
    kind: str  # one of KINDS
    at: float  # where, as a fraction of the file
    size: float  # how much, as a fraction of the file (flip: how many bytes, as a fraction)
    seed: int = 0

    def apply(self, data: bytes, other: bytes = b"") -> bytes:
        n = len(data)
        start = min(n, int(self.at * n))
        length = max(1, int(self.size * n))
        if self.kind == "truncate":
            return data[:start]
        if self.kind == "flip":
            out = bytearray(data)
            rng = np.random.default_rng(self.seed)
            for i in rng.integers(0, max(1, n), size=max(1, min(length, 4096))):
                out[int(i)] ^= 1 << int(rng.integers(0, 8))
            return bytes(out)
        if self.kind == "splice":  # another file's first bytes over this one's: container headers that lie
            head = (other or data[::-1])[: max(64, length)]
            return head + data[len(head):]
        if self.kind == "zero":
            return data[:start] + b"\0" * min(length, n - start) + data[start + length:]
        raise ValueError(f"unknown corruption {self.kind!r}")

    def write(self, src: Path, dst: Path, other: Path | None = None) -> Path:
        dst.write_bytes(self.apply(Path(src).read_bytes(), Path(other).read_bytes() if other else b""))
        return dst
