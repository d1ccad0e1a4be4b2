"""Frame cache: each video decoded once, resized by the rule, stored for fast sample reads.

Why: a PRP sample at s = 8 needs 128 consecutive frames, and OpenCV can only reach them by
decoding from the start of the video (see video.py). The cache stores resized frames so a
sample costs one contiguous read and the decode of just the frames it uses.

Formats (one file per video, under the user cache, never in the dataset root):
- "jpeg" (default): frames JPEG-encoded and packed in one file with an offset index.
  ~10× smaller than raw. Lossy, so it serves training only: evaluation, export parity and
  the runtime decode the video itself, so their inputs are identical.
- "raw": a uint8 .npy (N, H, W, 3), memory-mapped; fastest, large.

Both are written as the frames decode, one frame in memory at a time, so preparing an hour
of footage takes the memory of a minute; the header, which needs the count, is written
last, and the file appears by an atomic rename only when complete.

File layout of a .jpk pack (v2): b"PRPJPK02", uint32 n, uint32 height, uint32 width, float64
fps, uint64 where the index starts; the JPEG bytes; then the index: (n + 1) little-endian
uint64 offsets into the JPEG bytes. (v1, b"PRPJPK01", had no index position and the index
right after the header; it is still read.)
"""

from __future__ import annotations

import hashlib
import os
import struct
from array import array
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np

from ..errors import VideoError
from ..files import atomic_write
from ..paths import cache_dir
from .preprocess import resize_rgb
from .video import VideoInfo, default_count_cache, iter_frames, open_capture

MAGIC, MAGIC_V1 = b"PRPJPK02", b"PRPJPK01"
HEADER = struct.Struct("<8sIIIdQ")  # magic, n, height, width, fps, index position
HEADER_V1 = struct.Struct("<8sIIId")
FORMATS = ("jpeg", "raw")
NPY_HEADER_BYTES = 128  # room kept for a .npy 1.0 header, filled in once the count is known


def _video_key(path: str) -> str:
    st = os.stat(path)
    ident = f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(ident.encode()).hexdigest()[:24]


class FrameCache:
    """Resized RGB frames of videos, keyed by each file's identity (path, size, mtime)."""

    def __init__(self, short_side: int = 128, fmt: str = "jpeg", quality: int = 90, root: Path | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"cache format must be one of {FORMATS}, got {fmt!r}")
        self.short_side, self.fmt, self.quality = short_side, fmt, quality
        # "-area": frames shrunk by area averaging (the resize rule since cache v2); older caches are not reused.
        self.root = Path(root) if root else cache_dir() / "frames" / f"{fmt}-{short_side}-area"

    def path_for(self, video: str | os.PathLike) -> Path:
        return self.root / (_video_key(str(video)) + (".jpk" if self.fmt == "jpeg" else ".npy"))

    def has(self, video: str | os.PathLike) -> bool:
        try:
            return self.path_for(video).exists()
        except OSError:
            return False

    def write(self, video: str | os.PathLike) -> int:
        """Decode `video` once and store its resized frames as they decode; returns the count.

        The file appears atomically (temp + rename): an interrupted prepare leaves no
        half-written entry. The true frame count goes to the frame-count cache too.
        """
        video = str(video)
        cap = open_capture(video)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        shape: list[int] = []  # (n, h, w) once written

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                frames = (resize_rgb(fr, self.short_side) for fr in iter_frames(video))
                shape.extend(self._write_raw(f, frames, video) if self.fmt == "raw" else self._write_jpeg(f, frames, fps, video))

        atomic_write(self.path_for(video), write)
        n, h, w = shape
        default_count_cache().put(video, VideoInfo(video, fps, w, h, n, claimed))
        return n

    def _write_jpeg(self, f: BinaryIO, frames: Iterator[np.ndarray], fps: float, video: str) -> tuple[int, int, int]:
        f.write(bytes(HEADER.size))  # the header needs the count: written last
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        offsets, size = array("Q", [0]), None
        for fr in frames:
            size = size or fr.shape[:2]
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(fr, cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise VideoError(f"{video}: JPEG encoding failed")
            f.write(buf)
            offsets.append(offsets[-1] + len(buf))
        if size is None:
            raise VideoError(f"{video}: no frame decodes")
        index_at = f.tell()
        f.write(np.asarray(offsets, "<u8").tobytes())
        f.seek(0)
        f.write(HEADER.pack(MAGIC, len(offsets) - 1, size[0], size[1], fps, index_at))
        return len(offsets) - 1, size[0], size[1]

    def _write_raw(self, f: BinaryIO, frames: Iterator[np.ndarray], video: str) -> tuple[int, int, int]:
        f.write(bytes(NPY_HEADER_BYTES))
        n, size = 0, None
        for fr in frames:
            if size is not None and fr.shape != size:
                raise VideoError(f"{video}: the frame size changes at frame {n} ({size[1]}x{size[0]} to {fr.shape[1]}x{fr.shape[0]}); "
                                 "the raw cache needs one size (use --format jpeg)")
            size = fr.shape
            f.write(np.ascontiguousarray(fr).tobytes())
            n += 1
        if size is None:
            raise VideoError(f"{video}: no frame decodes")
        f.seek(0)
        f.write(_npy_header((n, *size)))
        return n, size[0], size[1]

    def num_frames(self, video: str | os.PathLike) -> int:
        p = self.path_for(video)
        if self.fmt == "raw":
            return int(np.load(p, mmap_mode="r").shape[0])
        with open(p, "rb") as f:
            return _pack_header(f, p, video)[0]

    def read(self, video: str | os.PathLike, indices) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed): uint8 RGB (N, H, W, 3)."""
        indices = np.asarray(indices, dtype=np.int64)
        p = self.path_for(video)
        if self.fmt == "raw":
            return np.asarray(np.load(p, mmap_mode="r")[indices])
        with open(p, "rb") as f:
            n, h, w, data_start, index_at = _pack_header(f, p, video)
            if indices.min() < 0 or indices.max() >= n:
                raise VideoError(f"{video}: frame {int(indices.max())} asked of a cached video of {n} frames")
            lo, hi = int(indices.min()), int(indices.max())
            f.seek(index_at + 8 * lo)  # only the offsets this read needs
            offsets = np.frombuffer(f.read(8 * (hi - lo + 2)), "<u8")
            base = int(offsets[0])
            # One contiguous read covers every wanted frame: a sample's frames are close together.
            f.seek(data_start + base)
            blob = np.frombuffer(f.read(int(offsets[-1]) - base), np.uint8)
        out = np.empty((len(indices), h, w, 3), np.uint8)
        decoded: dict[int, int] = {}
        for k, i in enumerate(indices.tolist()):
            if i in decoded:
                out[k] = out[decoded[i]]
                continue
            a, b = int(offsets[i - lo]) - base, int(offsets[i - lo + 1]) - base
            bgr = cv2.imdecode(blob[a:b], cv2.IMREAD_COLOR)
            if bgr is None:
                raise VideoError(f"{p}: cached frame {i} of {video} is corrupt; delete the file and prepare again")
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[k])
            decoded[i] = k
        return out


def _pack_header(f: BinaryIO, p: Path, video) -> tuple[int, int, int, int, int]:
    """(n, height, width, where the JPEG bytes start, where the index starts) of a .jpk pack."""
    head = f.read(HEADER.size)
    if head[:8] == MAGIC:
        _, n, h, w, _, index_at = HEADER.unpack(head)
        return n, h, w, HEADER.size, index_at
    if head[:8] == MAGIC_V1:  # the index right after the header, the JPEG bytes after it
        _, n, h, w, _ = HEADER_V1.unpack(head[: HEADER_V1.size])
        return n, h, w, HEADER_V1.size + 8 * (n + 1), HEADER_V1.size
    raise VideoError(f"{p}: not a frame-cache file (cached from {video}); delete it and run `prp-deploy data prepare` again")


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy 1.0 header for uint8 data of `shape`, padded to NPY_HEADER_BYTES (numpy's format:
    magic, version, little-endian header length, a dict literal padded with spaces and a newline)."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    body = text.ljust(NPY_HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")
