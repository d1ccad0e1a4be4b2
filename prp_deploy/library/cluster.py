"""The index job on a Ray cluster (the `cluster` extra): Ray Data does the distribution.

The sources to embed become a Ray Dataset; `map_batches` runs them through a pool of
actors, each holding one engine (opened once, with its declared CPUs or GPU); the rows
come back to this driver, which commits them as the same Parquet parts the local job
writes. Ray Data retries the work of an actor that dies on a restarted one (its actor
pools restart actors and retry their tasks by default), and only the driver writes, so a
killed actor leaves no missing and no duplicated row. A killed driver loses only the part
it had not committed: the same command, run again, skips what is in the library.

The export travels in Ray's object store (a worker node need not share a file system
with the driver); the sources do not: they must be readable at the same path on every
node (shared storage) or be URLs.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import PRPError
from ..runtime.model_info import ModelInfo
from ..runtime.options import RunOptions
from .embed import SourceResult, embed_sources
from .store import SourceKey


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise PRPError("--ray needs Ray: pip install 'prp-deploy[cluster]'") from None
    return ray


def connect(address: str, num_cpus: int | None = None):
    """Join the cluster at `address` ("auto" or host:port), or start one here for "local".
    Returns (ray, whether this call started it). Already connected: that cluster is used."""
    ray = _ray()
    if ray.is_initialized():
        return ray, False
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise PRPError(f"--ray {address}: cannot connect ({str(e).splitlines()[0][:160]})") from None
    return ray, True


def export_files(model: Path) -> tuple[str, dict[str, bytes]]:
    """The export's files (its folder's plain files, for a model file the folder it lies in), to ship to workers."""
    folder = model if model.is_dir() else model.parent
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
    return ("" if model.is_dir() else model.name), files


class EmbedWorker:
    """One Ray actor: the export written to a local temp folder, one engine opened on it, then
    a batch of sources at a time through the runtime's scheduler."""

    def __init__(self, export, backend: str, precision: str | None, allow_unverified: bool, run_options: dict, threads: int):
        import ray

        from ..runtime.backends import check_backend_matches, open_backend
        from ..runtime.model_info import read_model_info

        name, files = ray.get(export) if isinstance(export, ray.ObjectRef) else export
        self.folder = Path(tempfile.mkdtemp(prefix="prp-deploy-export-"))
        for fname, data in files.items():
            (self.folder / fname).write_bytes(data)
        model = self.folder / name if name else self.folder
        self.info = read_model_info(model)
        self.backend = open_backend(model, backend, precision, allow_unverified=allow_unverified, threads=threads)
        check_backend_matches(self.backend, self.info)
        self.opts = RunOptions(**run_options)

    def __call__(self, batch: dict) -> dict:
        keys = [SourceKey(s, _opt(z), _opt(m), h or None) for s, z, m, h in
                zip(batch["source"], batch["size"], batch["mtime_ns"], batch["sha256"])]
        results = {r.key.source: r for r in embed_sources(keys, self.info, self.backend, self.opts, max_open=min(4, len(keys)))}
        return {"source": np.array([k.source for k in keys], dtype=object),
                "result": np.array([pickle.dumps(results[k.source]) for k in keys], dtype=object)}

    def __del__(self):
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


def _opt(v) -> int | None:
    return None if v is None or int(v) < 0 else int(v)


def embed_on_ray(todo: list[SourceKey], model: Path, info: ModelInfo, run_opts: RunOptions, opts,
                 say: Callable[[str], None]) -> Iterator[SourceResult]:
    """SourceResults as the cluster finishes them (a generator: closing it shuts down a cluster it started)."""
    ray, started = connect(opts.ray, num_cpus=None)
    try:
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-job INFO lines are not the user's business
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the job shows its own bar; Ray's would interleave with it
        cpus = float(ray.cluster_resources().get("CPU", 1))
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if opts.gpus_per_actor and gpus < opts.gpus_per_actor:
            raise PRPError(f"--gpus-per-actor {opts.gpus_per_actor}: the cluster has {gpus:g} GPU(s)")
        actors = opts.actors or max(1, int(cpus // max(opts.cpus_per_actor, 1e-9)))
        actors = min(actors, len(todo))
        say(f"ray: {actors} actor(s) of {opts.cpus_per_actor:g} CPU{f', {opts.gpus_per_actor:g} GPU' if opts.gpus_per_actor else ''} "
            f"on a cluster of {cpus:g} CPU(s), {gpus:g} GPU(s)")
        export = ray.put(export_files(Path(model)))
        items = [{"source": k.source, "size": -1 if k.size is None else k.size, "mtime_ns": -1 if k.mtime_ns is None else k.mtime_ns,
                  "sha256": k.sha256 or ""} for k in todo]
        ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // opts.sources_per_task)))
        out = ds.map_batches(
            EmbedWorker,
            fn_constructor_kwargs={"export": export, "backend": opts.backend, "precision": opts.precision,
                                   "allow_unverified": opts.allow_unverified, "run_options": asdict(run_opts),
                                   "threads": max(1, int(opts.cpus_per_actor))},
            # A few sources a task: their windows share engine batches (one source's alone leave
            # them part-empty) and Ray's per-task cost is spread; a killed actor redoes at most these.
            batch_size=opts.sources_per_task,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=opts.cpus_per_actor, num_gpus=opts.gpus_per_actor or None,
            batch_format="numpy",
        )
        for row in out.iter_rows():
            yield pickle.loads(row["result"])
    finally:
        if started:
            ray.shutdown()


__all__ = ["EmbedWorker", "connect", "embed_on_ray", "export_files"]
