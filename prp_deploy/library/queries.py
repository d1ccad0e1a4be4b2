"""Searching a library by example: a query (a video, a span of one, or a source already in the
library) becomes a vector defined as the library's own, and FAISS finds its nearest videos or
windows, filtered by a glob and without the query itself. `Library.search` and
`Library.query_vector` call these."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PRPError, UsageError
from ..runtime.backends import open_backend
from ..runtime.model_info import read_model_info
from ..runtime.options import RunOptions
from .embed import embed_sources
from .index import search_index
from .store import SourceKey, normalise, pyarrow_modules, source_key


@dataclass
class Hit:
    rank: int
    score: float
    source: str
    start_s: float | None
    end_s: float | None
    window: int | None
    labels: list[tuple[str, float]]

    def as_dict(self) -> dict:
        d = {"rank": self.rank, "score": round(self.score, 6), "source": self.source, "start_s": self.start_s, "end_s": self.end_s}
        if self.window is not None:
            d["window"] = self.window
        if self.labels:
            d["labels"] = [{"label": l, "score": round(s, 6)} for l, s in self.labels]
        return d


@dataclass
class Query:
    source: str
    vector: np.ndarray
    start_s: float | None
    end_s: float | None
    windows: int


def parse_query(query: str) -> tuple[str, float | None, float | None]:
    """`clip.mp4@12.5-15.0` → (clip.mp4, 12.5, 15.0); a path without a span (or whose name holds an @) as it is."""
    if "@" in query and not Path(query).exists():
        path, span = query.rsplit("@", 1)
        try:
            a, b = (float(x) for x in span.split("-", 1))
        except ValueError:
            raise UsageError(f"{query}: a span is FILE@START-END in seconds, such as clip.mp4@12.5-15.0") from None
        if not 0 <= a < b:
            raise UsageError(f"{query}: the span's start must be >= 0 and before its end")
        return path, a, b
    return query, None, None


def _in_span(s: float, e: float, start: float | None, end: float | None) -> bool:
    """A window belongs to the span when its middle lies inside it (so a 2.5 s span of 0.6 s windows gets about 4)."""
    if start is None:
        return True
    mid = (s + e) / 2
    return start <= mid <= end


def _overlaps(table, row: int, start: float | None, end: float | None) -> bool:
    if start is None:
        return True
    s, e = table.column("start_s")[row].as_py(), table.column("end_s")[row].as_py()
    return s < end and e > start


def _predicate(where):
    if where is None or callable(where):
        return where
    return lambda s: fnmatch.fnmatch(s, where) or fnmatch.fnmatch(Path(s).name, where)


def _hit(rank: int, score: float, table, row: int, by: str) -> Hit:
    r = table.slice(row, 1).to_pylist()[0]
    labels = list(zip(r["top_labels"], r["top_scores"])) if r.get("top_labels") else []
    if by == "video":
        dur = r["frames"] / r["fps"] if r.get("fps") else None
        return Hit(rank, score, r["source"], 0.0 if dur else None, round(dur, 4) if dur else None, None, labels)
    return Hit(rank, score, r["source"], r["start_s"], r["end_s"], r["window"], labels)


def pyarrow_compute():
    pyarrow_modules()  # without pyarrow: the line that says which extra to install
    import pyarrow.compute as pc

    return pc


def embeddings(table) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    return np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32).reshape(len(table), -1)


def search(lib, query: str, k: int, by: str, where: str | Callable[[str], bool] | None,
           include_self: bool, say: Callable[[str], None]) -> list[Hit]:
    """The k nearest videos (by="video") or windows (by="window") to QUERY: a video file, a span
    of one (`clip.mp4@12.5-15.0`, seconds), or a source already in the library (its stored
    vectors, nothing decoded). `where`: a glob on the source path (or a predicate) that hits
    must match. The query's own source is left out of video hits, and its overlapping
    windows out of window hits, unless include_self."""
    if by not in ("video", "window"):
        raise UsageError(f"--by must be video or window, got {by!r}")
    if k < 1:
        raise UsageError(f"--topk must be >= 1, got {k}")
    lib.meta  # noqa: B018 - a folder that is not a library says so here
    q = query_vector(lib, query, say)
    index, _, table = lib.index_table("videos" if by == "video" else "windows")
    if index is None:
        raise PRPError(f"{lib.path}: the library has no {by}s yet")
    sources = table.column("source").to_pylist()
    keep = _predicate(where)
    wanted = k
    while True:  # ask FAISS for more until k hits survive the filters (or the library runs out)
        scores, rows = search_index(index, q.vector[None], wanted)
        hits = []
        for score, row in zip(scores[0], rows[0]):
            if row < 0:
                continue
            src = sources[row]
            if keep is not None and not keep(src):
                continue
            if not include_self and src == q.source and (by == "video" or _overlaps(table, row, q.start_s, q.end_s)):
                continue
            hits.append(_hit(len(hits) + 1, float(score), table, int(row), by))
            if len(hits) == k:
                return hits
        if wanted >= index.ntotal:
            return hits
        wanted = min(index.ntotal, wanted * 4)

def query_vector(lib, query: str, say: Callable[[str], None]) -> Query:  # noqa: C901
    """QUERY → its library vector, defined as the library's: a whole video's is the normalised mean
    of its windows' raw vectors (a library source's is its stored row, nothing decoded); a
    span's is the normalised mean of its windows' normalised vectors."""
    pc = pyarrow_compute()
    path, start_s, end_s = parse_query(query)
    key = source_key(path)
    videos = lib.store.read("videos")
    ok = {s for s, st in zip(videos.column("source").to_pylist(), videos.column("status").to_pylist()) if st == "ok"}
    if key.source not in ok and key.size is not None:  # a copy of a library video is that video
        digest = source_key(path, with_hash=True).sha256
        same = [s for s, h in zip(videos.column("source").to_pylist(), videos.column("sha256").to_pylist()) if h == digest and s in ok]
        if same:
            key = SourceKey(same[0])
    if key.source in ok:
        if start_s is None:
            row = videos.filter(pc.equal(videos.column("source"), key.source))
            return Query(key.source, embeddings(row)[0], None, None, int(row.column("windows")[0].as_py()))
        windows = lib.store.read("windows")
        windows = windows.filter(pc.equal(windows.column("source"), key.source))
        spans, vecs = windows.select(["start_s", "end_s"]).to_pylist(), embeddings(windows)
    else:
        if key.size is None and not path.startswith(("rtsp:", "rtmp:", "http:", "https:")):
            raise PRPError(f"{path}: no such file, and no source of {lib.path} by that name")
        raw, spans = _embed_query(lib, path, say)
        if start_s is None:
            return Query(key.source, normalise(raw.mean(0)), None, None, len(raw))
        vecs = normalise(raw)
    chosen = [i for i, s in enumerate(spans) if _in_span(s["start_s"], s["end_s"], start_s, end_s)]
    if not chosen:
        raise UsageError(f"{query}: no window of {path} lies in {start_s}-{end_s} s (it has {len(spans)} windows, "
                         f"{spans[0]['start_s']:.2f}-{spans[-1]['end_s']:.2f} s)" if spans else f"{query}: no window")
    return Query(key.source, normalise(vecs[chosen].mean(0)), start_s, end_s, len(chosen))

def _embed_query(lib, path: str, say) -> tuple[np.ndarray, list[dict]]:
    """A query video not in the library, through the library's own model (the raw mean vectors)."""
    model = Path(lib.meta["model"]["path"])
    if not model.exists():
        raise PRPError(f"{model}: the library's model is not here, so a new video cannot be embedded (query by a source in the library)")
    info = read_model_info(model)
    backend = open_backend(model, "auto", None, say=say)
    opts = RunOptions(task="features", batch=8, live=False, reconnect=1)
    res = next(embed_sources([source_key(path)], info, backend, opts, 1, say=say))
    if res.status != "ok" or not res.records:
        raise PRPError(f"{path}: cannot be embedded ({res.error or 'no window'})")
    order = np.argsort([r["window"] for r in res.records], kind="stable")
    vecs = np.concatenate(res.vectors)[order]
    return vecs, [{"start_s": res.records[i]["start_s"], "end_s": res.records[i]["end_s"]} for i in order]
