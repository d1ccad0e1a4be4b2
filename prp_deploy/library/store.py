"""A video library on disk: Parquet parts that other tools read, and `library.json`.

    LIB/library.json                 the model it was made with, the vector, counts, versions
    LIB/parts/<id>/windows.parquet   a row per window: source, span, embedding, top-k labels
    LIB/parts/<id>/videos.parquet    a row per source: pooled embedding, video top-k, or why it failed
    LIB/parts/<id>/manifest.json     the part's files, their sizes and sha256
    LIB/index/                       FAISS indexes built from the parts (index.py)

A part is written into a hidden folder and renamed into place, so it is there whole or not
at all: a job killed mid-write loses only the sources of the part it was writing, and the
same command run again finds the finished ones and does the rest. Parts are read in name
order (a time stamp first), and for a source indexed twice the newest ok row wins.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..errors import PRPError
from ..runtime.artifacts import sha256
from ..runtime.source_list import NETWORK_SCHEMES

LIBRARY_FILE = "library.json"
LIBRARY_SCHEMA_VERSION = 1
PARTS = "parts"
MANIFEST = "manifest.json"  # a part's files with their sizes and sha256
_REPAIR = "remove the folder {part} and run the same `prp-deploy index` command again to re-embed its sources"


def pyarrow_modules():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PRPError("the video library needs pyarrow and faiss-cpu: pip install 'prp-deploy[search]'") from None
    return pa, pq


def window_schema(dim: int):
    pa, _ = pyarrow_modules()
    return pa.schema([
        ("source", pa.string()),  # the absolute path or URL
        ("window", pa.int32()),
        ("start_frame", pa.int64()), ("end_frame", pa.int64()),  # end exclusive
        ("start_s", pa.float64()), ("end_s", pa.float64()),
        ("padded", pa.int32()),  # frames repeated because the video ended (or dropped)
        ("embedding", pa.list_(pa.float32(), dim)),  # L2-normalised library vector
        ("top_labels", pa.list_(pa.string())), ("top_scores", pa.list_(pa.float32())),  # null for an encoder
    ])


def video_schema(dim: int):
    pa, _ = pyarrow_modules()
    return pa.schema([
        ("source", pa.string()),
        ("status", pa.string()),  # "ok" | "failed"
        ("error", pa.string()),
        ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string()),  # null for a URL
        ("frames", pa.int64()), ("fps", pa.float64()), ("windows", pa.int32()),
        ("span_start_s", pa.float64()), ("span_end_s", pa.float64()),  # `index --start/--end`; null: the whole file
        ("embedding", pa.list_(pa.float32(), dim)),  # mean of the windows' vectors, L2-normalised; null when failed
        ("top_labels", pa.list_(pa.string())), ("top_scores", pa.list_(pa.float32())),  # softmax of the mean logits
        ("indexed_at", pa.string()),
    ])


@dataclass(frozen=True)
class SourceKey:
    """What says a source is already in the library: the same path, size and mtime, or the same content."""
    source: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None


def source_key(source: str, with_hash: bool = False) -> SourceKey:
    """The key of a file (absolute path, size, mtime; its sha256 when asked) or of a URL (itself)."""
    if urlparse(source).scheme in NETWORK_SCHEMES:
        return SourceKey(source)
    path = Path(source).absolute()
    try:
        st = path.stat()
    except OSError:
        return SourceKey(str(path))  # a missing file fails as that source, not as the job
    return SourceKey(str(path), st.st_size, st.st_mtime_ns, file_sha256(path) if with_hash else None)


def file_sha256(path: Path) -> str | None:
    """The file's sha256 (the runtime's own, which parity records), None when it cannot be read."""
    try:
        return sha256(path)
    except OSError:
        return None


def model_identity(model: Path) -> dict:
    """What makes two libraries comparable: the export's FP32 reference graph (model.onnx, which
    every other artefact was checked against) and the training config's hash."""
    from ..runtime.model_info import read_model_info

    model = Path(model)
    folder = model if model.is_dir() else model.parent
    reference = folder / "model.onnx" if (folder / "model.onnx").exists() else model
    info = read_model_info(model)
    return {"sha256": file_sha256(reference), "file": reference.name, "config_hash": info.raw.get("config_hash")}


class Store:
    """The library folder: library.json, committed parts, and the rows they hold."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def meta_file(self) -> Path:
        return self.path / LIBRARY_FILE

    def exists(self) -> bool:
        return self.meta_file.exists()

    def meta(self) -> dict:
        if not self.exists():
            raise PRPError(f"{self.path}: not a video library (no {LIBRARY_FILE}); make one with `prp-deploy index SOURCES --out {self.path}`")
        try:
            meta = json.loads(self.meta_file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise PRPError(f"{self.meta_file}: unreadable ({e})") from None
        if meta.get("schema_version", 0) > LIBRARY_SCHEMA_VERSION:
            raise PRPError(f"{self.meta_file}: schema version {meta['schema_version']} is newer than this prp-deploy reads ({LIBRARY_SCHEMA_VERSION}); upgrade prp-deploy")
        return meta

    def write_meta(self, meta: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{LIBRARY_FILE}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, self.meta_file)

    def part_dirs(self) -> list[Path]:
        """The committed parts, each checked against its manifest's file sizes (cheap, on every
        use: a truncated or half-copied part is named before anything is searched)."""
        root = self.path / PARTS
        parts = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []
        for part in parts:
            try:
                manifest = json.loads((part / MANIFEST).read_text())
                for name, facts in manifest["files"].items():
                    if (part / name).stat().st_size != facts["bytes"]:
                        raise PRPError(f"{part / name}: corrupt part ({(part / name).stat().st_size} bytes, its manifest says "
                                       f"{facts['bytes']}); {_REPAIR.format(part=part)}")
            except (OSError, ValueError, KeyError) as e:
                raise PRPError(f"{part}: corrupt part ({type(e).__name__}: {e}); {_REPAIR.format(part=part)}") from None
        return parts

    def commit_part(self, windows: list[dict], videos: list[dict], dim: int) -> Path:
        """Write one part atomically (a hidden folder renamed into place) and return it."""
        pa, pq = pyarrow_modules()
        root = self.path / PARTS
        root.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}-{uuid.uuid4().hex[:6]}"
        tmp = root / f".{name}.tmp"
        tmp.mkdir()
        pq.write_table(pa.Table.from_pylist(windows, schema=window_schema(dim)), tmp / "windows.parquet")
        pq.write_table(pa.Table.from_pylist(videos, schema=video_schema(dim)), tmp / "videos.parquet")
        files = {f: {"bytes": (tmp / f).stat().st_size, "sha256": file_sha256(tmp / f)} for f in ("windows.parquet", "videos.parquet")}
        (tmp / MANIFEST).write_text(json.dumps({"files": files, "windows": len(windows), "videos": len(videos)}, indent=1) + "\n")
        os.rename(tmp, root / name)
        return root / name

    def drop_unfinished(self) -> int:
        """Remove parts a killed job left half-written (hidden temp folders); returns how many."""
        root = self.path / PARTS
        stale = [p for p in root.glob(".*.tmp")] if root.exists() else []
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)

    def read(self, table: str):
        """All rows of `table` ("videos" or "windows") over the parts, the newest ok row of each
        source kept (a source indexed again after it changed); a part that cannot be read is
        named with how to repair the library."""
        pa, pq = pyarrow_modules()
        parts = self.part_dirs()
        videos = []
        for part in parts:
            t = _read_part(pq, part, "videos")
            videos.append(t.append_column("part", pa.array([part.name] * len(t), pa.string())))
        if not videos:
            dim = int(self.meta().get("dim", 1))
            empty = video_schema(dim).append(pa.field("part", pa.string()))
            return empty.empty_table() if table == "videos" else window_schema(dim).empty_table()
        allv = pa.concat_tables(videos, promote_options="default")  # parts from before the span columns: nulls
        keep = _newest_rows(allv.column("source").to_pylist(), allv.column("status").to_pylist())
        kept = allv.take(pa.array(keep, pa.int64()))
        if table == "videos":
            return kept
        wanted = {(s, p) for s, p, st in zip(kept.column("source").to_pylist(), kept.column("part").to_pylist(),
                                              kept.column("status").to_pylist()) if st == "ok"}
        tables = []
        for part in parts:
            t = _read_part(pq, part, "windows")
            mask = [(s, part.name) in wanted for s in t.column("source").to_pylist()]
            tables.append(t.filter(pa.array(mask, pa.bool_())))
        return pa.concat_tables(tables)


def _read_part(pq, part: Path, table: str):
    file = part / f"{table}.parquet"
    try:
        return pq.read_table(file)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise PRPError(f"{file}: corrupt part ({str(e).splitlines()[0][:120]}); {_REPAIR.format(part=part)}") from None


def _newest_rows(sources: list[str], statuses: list[str]) -> list[int]:
    """Row numbers to keep: per source its last ok row, else (never indexed) its last failed row."""
    best: dict[str, int] = {}
    for i, (s, st) in enumerate(zip(sources, statuses)):
        j = best.get(s)
        if j is None or st == "ok" or statuses[j] != "ok":
            best[s] = i
    return sorted(best.values())


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def library_versions() -> dict:
    """Versions of what made the rows, read from package metadata (nothing imported: not torch)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("prp-deploy", "numpy", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu", "tensorrt", "pyarrow", "faiss-cpu", "ray"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass  # not installed here (onnxruntime-gpu, tensorrt, ray are optional): nothing to record
    return out
