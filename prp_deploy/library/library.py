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

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import PRPError, UsageError
from ..runtime.backends import check_backend_matches, open_backend
from ..runtime.model_info import ModelInfo, read_model_info
from ..runtime.run import DEFAULT_MAX_OPEN, find_model
from ..runtime.file_decoder import Span
from ..runtime.options import RunOptions
from ..runtime.source_list import expand_sources
from .embed import VECTOR_DEFINITION, SourceResult, embed_sources, library_vectors, vector_dim
from .index import build_index, faiss_module, load_index, plan_index, save_index
from . import queries
from .queries import Hit, Query, embeddings, parse_query, pyarrow_compute
from .store import LIBRARY_SCHEMA_VERSION, SourceKey, Store, library_versions, model_identity, pyarrow_modules, source_key

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
            "versions": library_versions(),
        })
        if job:
            meta["jobs"] = [*meta.get("jobs", []), job]
        self.store.write_meta(meta)

    # ---- indexes -------------------------------------------------------------------------
    def build_indexes(self, kind: str = "auto", nprobe: int | None = None) -> dict:
        """Build (and save under LIB/index/) the video and window indexes from the parts."""
        facts = {}
        for by in ("videos", "windows"):
            index, plan, _ = self.index_table(by, kind, nprobe, rebuild=True)
            facts[by] = plan.describe() if plan else "empty"
        meta = self.meta
        meta["index"] = facts
        self.store.write_meta(meta)
        return facts

    def index_table(self, by: str, kind: str = "auto", nprobe: int | None = None, rebuild: bool = False):
        """(FAISS index, plan, table) for "videos" or "windows"; a saved index is used if it covers the parts."""
        pc = pyarrow_compute()
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
        vectors = embeddings(table)
        plan = plan_index(len(vectors), kind, nprobe)
        index = build_index(vectors, plan)
        save_index(index, file, {"parts": parts, "rows": table.num_rows, "kind": plan.kind, "nlist": plan.nlist, "nprobe": plan.nprobe})
        return index, plan, table
    # ---- searching (queries.py) -----------------------------------------------------------
    def search(self, query: str, k: int = 10, by: str = "video", where: str | Callable[[str], bool] | None = None,
               include_self: bool = False, say: Callable[[str], None] = _err) -> list[Hit]:
        """The k nearest videos (by="video") or windows (by="window") to QUERY: a video file, a span
        of one (`clip.mp4@12.5-15.0`, seconds), or a source already in the library (its stored
        vectors, nothing decoded). `where`: a glob on the source path (or a predicate) that hits
        must match. The query's own source is left out of video hits, and its overlapping
        windows out of window hits, unless include_self."""
        return queries.search(self, query, k, by, where, include_self, say)

    def query_vector(self, query: str, say: Callable[[str], None] = _err) -> Query:
        """QUERY → its library vector, defined as the library's (see queries.query_vector)."""
        return queries.query_vector(self, query, say)


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
