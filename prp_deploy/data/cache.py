"""Frame cache: each video decoded once, resized by the rule, stored for fast sample reads.

Why: a PRP sample at s = 8 needs 128 consecutive frames, and OpenCV can only reach them by
decoding from the start of the video (see video.py). The cache stores resized frames so a
sample costs one contiguous read and the decode of just the frames it uses.

Formats (one file per video, under the user cache, never in the dataset root):
- "jpeg" (default): frames JPEG-encoded and packed in one file behind an offset index.
  ~10× smaller than raw. Lossy, so it serves training only: evaluation, export parity and
  the runtime decode the video itself, so their inputs are identical.
- "raw": a uint8 .npy (N, H, W, 3), memory-mapped; fastest, large.

File layout of a .jpk pack: b"PRPJPK01", uint32 n, uint32 height, uint32 width, float64 fps,
then (n + 1) little-endian uint64 offsets into the data that follows, then the JPEG bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import cv2
import numpy as np

from ..errors import VideoError
from ..files import atomic_write
from ..paths import cache_dir
from .preprocess import resize_rgb
from .video import VideoInfo, default_count_cache, iter_frames, open_capture

MAGIC = b"PRPJPK01"
HEADER = struct.Struct("<8sIIId")
FORMATS = ("jpeg", "raw")


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
        """Decode `video` once and store its resized frames; returns the frame count.

        The file appears atomically (temp + rename): an interrupted prepare leaves no
        half-written entry. The true frame count goes to the frame-count cache too.
        """
        video = str(video)
        cap = open_capture(video)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        frames = [resize_rgb(f, self.short_side) for f in iter_frames(video)]
        if not frames:
            raise VideoError(f"{video}: no frame decodes")
        h, w = frames[0].shape[:2]

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                if self.fmt == "raw":
                    np.save(f, np.stack(frames))
                    return
                params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
                blobs = []
                for fr in frames:
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(fr, cv2.COLOR_RGB2BGR), params)
                    if not ok:
                        raise VideoError(f"{video}: JPEG encoding failed")
                    blobs.append(buf.tobytes())
                offsets = np.zeros(len(blobs) + 1, "<u8")
                offsets[1:] = np.cumsum([len(b) for b in blobs])
                f.write(HEADER.pack(MAGIC, len(blobs), h, w, fps))
                f.write(offsets.tobytes())
                for b in blobs:
                    f.write(b)

        atomic_write(self.path_for(video), write)
        default_count_cache().put(video, VideoInfo(video, fps, w, h, len(frames), claimed))
        return len(frames)

    def num_frames(self, video: str | os.PathLike) -> int:
        p = self.path_for(video)
        if self.fmt == "raw":
            return int(np.load(p, mmap_mode="r").shape[0])
        with open(p, "rb") as f:
            magic, n, _, _, _ = HEADER.unpack(f.read(HEADER.size))
        if magic != MAGIC:
            raise VideoError(f"{p}: not a frame-cache file (cached from {video}); delete it and run `prp-deploy data prepare` again")
        return int(n)

    def read(self, video: str | os.PathLike, indices) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed): uint8 RGB (N, H, W, 3)."""
        indices = np.asarray(indices, dtype=np.int64)
        p = self.path_for(video)
        if self.fmt == "raw":
            return np.asarray(np.load(p, mmap_mode="r")[indices])
        with open(p, "rb") as f:
            magic, n, h, w, _ = HEADER.unpack(f.read(HEADER.size))
            if magic != MAGIC:
                raise VideoError(f"{p}: not a frame-cache file (cached from {video}); delete it and run `prp-deploy data prepare` again")
            if indices.min() < 0 or indices.max() >= n:
                raise VideoError(f"{video}: frame {int(indices.max())} asked of a cached video of {n} frames")
            offsets = np.frombuffer(f.read(8 * (n + 1)), "<u8")
            data_start = HEADER.size + 8 * (n + 1)
            lo, hi = int(indices.min()), int(indices.max())
            # One contiguous read covers every wanted frame: a sample's frames are close together.
            f.seek(data_start + int(offsets[lo]))
            blob = np.frombuffer(f.read(int(offsets[hi + 1] - offsets[lo])), np.uint8)
        out = np.empty((len(indices), h, w, 3), np.uint8)
        decoded: dict[int, int] = {}
        for k, i in enumerate(indices.tolist()):
            if i in decoded:
                out[k] = out[decoded[i]]
                continue
            a, b = int(offsets[i] - offsets[lo]), int(offsets[i + 1] - offsets[lo])
            bgr = cv2.imdecode(blob[a:b], cv2.IMREAD_COLOR)
            if bgr is None:
                raise VideoError(f"{p}: cached frame {i} of {video} is corrupt; delete the file and prepare again")
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[k])
            decoded[i] = k
        return out
