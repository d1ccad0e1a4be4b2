"""`Library(path)`: index videos with an exported model, then search them by example.

    lib = Library("runs/lib")
    lib.add(["videos/", "more/*.mp4"], model="runs/NAME/export")   # only what is new is embedded
    hits = lib.search("query.mp4@12.5-15.0", k=10)                  # or a source already in the library
    lib.table("videos")                                             # the rows, as a pyarrow Table

One job: plan (which sources are new), embed (here, through the runtime's scheduler, or on a
Ray cluster), commit parts as sources finish, then write library.json and build the FAISS
indexes from the parts. The parts are the truth; the indexes are rebuilt from them whenever
they do not cover exactly the parts there are.
"""

from __future__ import annotations

import fnmatch
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PRPError, UsageError
from ..runtime.backends import check_backend_matches, open_backend
from ..runtime.model_info import ModelInfo, read_model_info
from ..runtime.run import DEFAULT_MAX_OPEN, find_model
from ..runtime.file_decoder import Span
from ..runtime.options import RunOptions
from ..runtime.source_list import expand_sources
from .embed import VECTOR_DEFINITION, SourceResult, embed_sources, library_vectors, vector_dim
from .index import build_index, faiss_module, load_index, plan_index, save_index, search_index
from .store import LIBRARY_SCHEMA_VERSION, SourceKey, Store, model_identity, normalise, pyarrow_modules, source_key

COMMIT_EVERY = 64  # sources a part holds: what a killed job can lose, against one file pair per part


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass
class IndexOptions:
    """How `add` embeds: the runtime's window options plus the job's own."""
    backend: str = "auto"
    precision: str | None = None
    allow_unverified: bool = False
    stride: int | None = None
    batch: int = 8
    topk: int = 5
    max_open: int = DEFAULT_MAX_OPEN
    commit_every: int = COMMIT_EVERY
    index: str = "auto"  # auto | exact | ivf
    nprobe: int | None = None
    ray: str | None = None  # None: here; "local" or a cluster address: on Ray
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    sources_per_task: int = 8  # Ray: sources one task embeds (their windows share engine batches; a dead actor redoes at most these)
    progress: bool = False
    start: float | None = None  # index only [start, end) seconds of each file (a seek); a file holds one entry
    end: float | None = None

    def __post_init__(self) -> None:
        Span(self.start, self.end)  # --start before --end: a usage error before anything is written


@dataclass
class AddReport:
    added: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    windows: int = 0
    seconds: float = 0.0
    engine: str = "local"

    def line(self) -> str:
        rate = f"; {self.added / max(self.seconds, 1e-9):.2f} videos/s, {self.windows / max(self.seconds, 1e-9):.1f} windows/s" if self.added else ""
        return (f"indexed {self.added} new source(s) ({self.windows} windows), {self.skipped} already in the library, "
                f"{len(self.failed)} failed, in {self.seconds:.1f} s on {self.engine}{rate}")


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


class Library:
    """A folder of Parquet parts + library.json + FAISS indexes (see store.py for the layout)."""

    def __init__(self, path: str | Path):
        self.store = Store(path)
        self.path = self.store.path
        self._indexes: dict[str, tuple] = {}

    # ---- what is there -------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        return self.store.meta()

    def table(self, name: str = "videos"):
        """The stored rows ("videos" or "windows") as a pyarrow Table: the newest ok row of each source."""
        if name not in ("videos", "windows"):
            raise PRPError(f"table must be videos or windows, got {name!r}")
        self.store.meta()  # a folder that is not a library says so
        return self.store.read(name)

    # ---- adding --------------------------------------------------------------------------
    def add(self, sources: list[str], model: str | Path | None = None, options: IndexOptions | None = None,
            say: Callable[[str], None] = _err, on_result: Callable[[SourceResult], None] | None = None) -> AddReport:
        """Embed the sources that are not in the library yet and commit them; a failed source is
        recorded with its reason and never stops the job. Returns what was done."""
        opts = options or IndexOptions()
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: is a file; a library is a folder (give a new or empty one, or an existing library)")
        if self.path.is_dir() and not self.store.exists() and any(self.path.iterdir()):
            raise UsageError(f"{self.path}: holds other files and no {self.store.meta_file.name}; give a new or empty folder, or a library")
        pyarrow_modules()  # the search extra, checked before anything is embedded or written
        faiss_module()
        t0 = time.perf_counter()
        model, info = self._model_for(model, say)
        dropped = self.store.drop_unfinished()
        if dropped:
            say(f"removed {dropped} unfinished part(s) a killed job left; their sources are embedded again")
        todo, skipped = self._plan(expand_sources([str(s) for s in sources]), (opts.start, opts.end), say)
        report = AddReport(skipped=skipped, engine="ray" if opts.ray else "local")
        if not self.store.exists():
            self._write_meta(model, info, first=True)
        if todo:
            results = _with_progress(self._embed(todo, model, info, opts, say), len(todo), opts.progress)
            buffer: list[SourceResult] = []
            try:
                for res in results:
                    buffer.append(res)
                    if res.status == "ok":
                        report.added += 1
                        report.windows += len(res.records)
                    else:
                        report.failed.append((res.key.source, res.error or "failed"))
                        say(f"{res.key.source}: failed ({res.error}); recorded, the job goes on")
                    if on_result:
                        on_result(res)
                    if len(buffer) >= opts.commit_every:
                        self._commit(buffer, info, opts)
                        buffer = []
            finally:  # what finished is kept, also when the job is interrupted
                if buffer:
                    self._commit(buffer, info, opts)
        report.seconds = time.perf_counter() - t0
        self._write_meta(model, info, job={"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "engine": report.engine, "added": report.added,
                                           "skipped": report.skipped, "failed": len(report.failed), "windows": report.windows,
                                           "seconds": round(report.seconds, 3)})
        self.build_indexes(opts.index, opts.nprobe)
        return report

    def _model_for(self, model, say) -> tuple[Path, ModelInfo]:
        """The model: the one given (which must be the library's own), else the library's, else the newest export."""
        if self.store.exists():
            meta = self.meta
            stored = meta["model"]
            path = Path(model) if model is not None else Path(stored["path"])
            if not path.exists():
                raise PRPError(f"{path}: the library's model is not there; pass --model with the export it was made with")
            ident = model_identity(path)
            if (ident["sha256"], ident["config_hash"]) != (stored["sha256"], stored["config_hash"]):
                raise PRPError(f"{self.path}: made by another model ({stored['path']}, {stored['file']} sha256 {stored['sha256'][:12]}); "
                               f"{path} is {ident['file']} sha256 {(ident['sha256'] or '?')[:12]}: index into a new --out")
            return path, read_model_info(path)
        path = find_model(model, say)
        return path, read_model_info(path)

    def _plan(self, sources: list[str], span: tuple, say) -> tuple[list[SourceKey], int]:
        """The sources not in the library yet: same path, size and mtime, or the same content, with
        the same span is in; another span of a file replaces its entry."""
        for s in sources:
            if s.isdigit():
                raise UsageError(f"webcam {s}: a library indexes files and network clips, not a live camera")
        have = self.store.read("videos") if self.store.exists() else None
        quick, by_hash = set(), {}
        if have is not None and have.num_rows:
            for r in have.select(["source", "status", "size", "mtime_ns", "sha256", "span_start_s", "span_end_s"]).to_pylist():
                if r["status"] == "ok":
                    quick.add((r["source"], r["size"], r["mtime_ns"], r["span_start_s"], r["span_end_s"]))
                    if r["sha256"]:
                        by_hash[(r["sha256"], r["span_start_s"], r["span_end_s"])] = r["source"]
        todo, skipped, seen = [], 0, set()
        for s in sources:
            key = source_key(s)
            if (key.source, key.size, key.mtime_ns, *span) in quick:
                skipped += 1
                continue
            if key.size is not None:
                key = source_key(s, with_hash=True)
                content = (key.sha256, *span)
                if content in by_hash or content in seen:
                    skipped += 1
                    say(f"{key.source}: same content as {by_hash.get(content, 'another source of this job')}; not indexed twice")
                    continue
                seen.add(content)
            todo.append(key)
        return todo, skipped

    def _embed(self, todo: list[SourceKey], model: Path, info: ModelInfo, opts: IndexOptions, say):
        run_opts = RunOptions(task="both" if info.kind == "recognizer" else "features", stride=opts.stride, batch=opts.batch,
                              topk=opts.topk, live=False, reconnect=1, start=opts.start, end=opts.end)
        run_opts.check(info)
        if opts.ray:
            from .cluster import embed_on_ray

            return embed_on_ray(todo, model, info, run_opts, opts, say)
        backend = open_backend(model, opts.backend, opts.precision, allow_unverified=opts.allow_unverified, say=say)
        check_backend_matches(backend, info)
        return embed_sources(todo, info, backend, run_opts, opts.max_open, say=say)

    def _commit(self, results: list[SourceResult], info: ModelInfo, opts: IndexOptions) -> None:
        windows, videos = [], []
        for res in results:
            w, v = res.rows(info, opts.topk)
            windows += w
            videos.append({**v, "span_start_s": opts.start, "span_end_s": opts.end})
        self.store.commit_part(windows, videos, vector_dim(info))

    def _write_meta(self, model: Path, info: ModelInfo, first: bool = False, job: dict | None = None) -> None:
        meta = {} if first else self.meta
        videos = self.store.read("videos") if not first else None
        ok = sum(1 for s in videos.column("status").to_pylist() if s == "ok") if videos is not None else 0
        windows = self.store.read("windows").num_rows if not first else 0
        meta.update({
            "schema_version": LIBRARY_SCHEMA_VERSION,
            "created": meta.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S"),
            "model": {**model_identity(model), "path": str(Path(model).absolute()), "kind": info.kind, "classes": list(info.classes),
                      "backbone": info.raw.get("backbone"), "preprocess": info.preprocess.to_dict()},
            "embedding": {"definition": VECTOR_DEFINITION, "dim": vector_dim(info), "from_output": "features",
                          "output_dim": info.feature_dim, "metric": "inner product of L2-normalised vectors (cosine)"},
            "dim": vector_dim(info),
            "counts": {"videos": ok, "failed": (videos.num_rows - ok) if videos is not None else 0, "windows": windows,
                       "parts": len(self.store.part_dirs())},
            "versions": _versions(),
        })
        if job:
            meta["jobs"] = [*meta.get("jobs", []), job]
        self.store.write_meta(meta)

    # ---- indexes -------------------------------------------------------------------------
    def build_indexes(self, kind: str = "auto", nprobe: int | None = None) -> dict:
        """Build (and save under LIB/index/) the video and window indexes from the parts."""
        facts = {}
        for by in ("videos", "windows"):
            index, plan, _ = self._index(by, kind, nprobe, rebuild=True)
            facts[by] = plan.describe() if plan else "empty"
        meta = self.meta
        meta["index"] = facts
        self.store.write_meta(meta)
        return facts

    def _index(self, by: str, kind: str = "auto", nprobe: int | None = None, rebuild: bool = False):
        """(FAISS index, plan, table) for "videos" or "windows"; a saved index is used if it covers the parts."""
        pc = _pc()
        table = self.store.read(by)
        if by == "videos":
            table = table.filter(pc.equal(table.column("status"), "ok"))
        parts = [p.name for p in self.store.part_dirs()]
        file = self.path / "index" / f"{by}.faiss"
        if table.num_rows == 0:
            return None, None, table
        if not rebuild:
            index = load_index(file, parts, table.num_rows)
            if index is not None:
                return index, None, table
        vectors = _embeddings(table)
        plan = plan_index(len(vectors), kind, nprobe)
        index = build_index(vectors, plan)
        save_index(index, file, {"parts": parts, "rows": table.num_rows, "kind": plan.kind, "nlist": plan.nlist, "nprobe": plan.nprobe})
        return index, plan, table

    # ---- searching -----------------------------------------------------------------------
    def search(self, query: str, k: int = 10, by: str = "video", where: str | Callable[[str], bool] | None = None,
               include_self: bool = False, say: Callable[[str], None] = _err) -> list[Hit]:
        """The k nearest videos (by="video") or windows (by="window") to QUERY: a video file, a span
        of one (`clip.mp4@12.5-15.0`, seconds), or a source already in the library (its stored
        vectors, nothing decoded). `where`: a glob on the source path (or a predicate) that hits
        must match. The query's own source is left out of video hits, and its overlapping
        windows out of window hits, unless include_self."""
        if by not in ("video", "window"):
            raise UsageError(f"--by must be video or window, got {by!r}")
        if k < 1:
            raise UsageError(f"--topk must be >= 1, got {k}")
        self.meta  # noqa: B018 - a folder that is not a library says so here
        q = self.query_vector(query, say)
        index, _, table = self._index("videos" if by == "video" else "windows")
        if index is None:
            raise PRPError(f"{self.path}: the library has no {by}s yet")
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

    def query_vector(self, query: str, say: Callable[[str], None] = _err) -> "Query":  # noqa: C901
        """QUERY → its library vector, defined as the library's: a whole video's is the normalised mean
        of its windows' raw vectors (a library source's is its stored row, nothing decoded); a
        span's is the normalised mean of its windows' normalised vectors."""
        pc = _pc()
        path, start_s, end_s = parse_query(query)
        key = source_key(path)
        videos = self.store.read("videos")
        ok = {s for s, st in zip(videos.column("source").to_pylist(), videos.column("status").to_pylist()) if st == "ok"}
        if key.source not in ok and key.size is not None:  # a copy of a library video is that video
            digest = source_key(path, with_hash=True).sha256
            same = [s for s, h in zip(videos.column("source").to_pylist(), videos.column("sha256").to_pylist()) if h == digest and s in ok]
            if same:
                key = SourceKey(same[0])
        if key.source in ok:
            if start_s is None:
                row = videos.filter(pc.equal(videos.column("source"), key.source))
                return Query(key.source, _embeddings(row)[0], None, None, int(row.column("windows")[0].as_py()))
            windows = self.store.read("windows")
            windows = windows.filter(pc.equal(windows.column("source"), key.source))
            spans, vecs = windows.select(["start_s", "end_s"]).to_pylist(), _embeddings(windows)
        else:
            if key.size is None and not path.startswith(("rtsp:", "rtmp:", "http:", "https:")):
                raise PRPError(f"{path}: no such file, and no source of {self.path} by that name")
            raw, spans = self._embed_query(path, say)
            if start_s is None:
                return Query(key.source, normalise(raw.mean(0)), None, None, len(raw))
            vecs = normalise(raw)
        chosen = [i for i, s in enumerate(spans) if _in_span(s["start_s"], s["end_s"], start_s, end_s)]
        if not chosen:
            raise UsageError(f"{query}: no window of {path} lies in {start_s}-{end_s} s (it has {len(spans)} windows, "
                             f"{spans[0]['start_s']:.2f}-{spans[-1]['end_s']:.2f} s)" if spans else f"{query}: no window")
        return Query(key.source, normalise(vecs[chosen].mean(0)), start_s, end_s, len(chosen))

    def _embed_query(self, path: str, say) -> tuple[np.ndarray, list[dict]]:
        """A query video not in the library, through the library's own model (the raw mean vectors)."""
        model = Path(self.meta["model"]["path"])
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


def _versions() -> dict:
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


def _pc():
    pyarrow_modules()  # without pyarrow: the line that says which extra to install
    import pyarrow.compute as pc

    return pc


def _embeddings(table) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    return np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32).reshape(len(table), -1)


def _with_progress(results, total: int, enabled: bool):
    if not enabled:
        yield from results
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="src", desc="indexing", file=sys.stderr, dynamic_ncols=True) as bar:
        for r in results:
            bar.update(1)
            yield r


__all__ = ["AddReport", "Hit", "IndexOptions", "Library", "parse_query", "library_vectors"]
