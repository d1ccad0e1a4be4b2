"""`index` throughput, single process against Ray Data on a local cluster of the same cores, in
one run (issue 19; docs/results.md), and whether the two libraries are the same.

    python scripts/bench_index.py --model runs/NAME/export [--sources DIR] [--cpus 2]

Default sources: the built-in dataset's 576 videos. The Ray cluster is started before the
clock starts (a real cluster is up before a job is sent to it); its start time is printed apart.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from prp_deploy.library import IndexOptions, Library


def rows(lib: Library) -> dict:
    return {(r["source"], r["window"]): np.asarray(r["embedding"]) for r in lib.table("windows").to_pylist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--sources", default=None, help="default: the built-in dataset's videos")
    p.add_argument("--cpus", type=int, default=os.cpu_count())
    args = p.parse_args()
    if args.sources is None:
        from prp_deploy.data.tasks import resolve_index

        index = resolve_index(None, None, 1)
        sources = [str(v.path) for v in [*index.train, *index.test]]
    else:
        sources = [args.sources]
    quiet = lambda s: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        local = Library(Path(tmp) / "local")
        a = local.add(sources, args.model, IndexOptions(), say=quiet)
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        start = time.perf_counter() - t
        on_ray = Library(Path(tmp) / "ray")
        b = on_ray.add(sources, args.model, IndexOptions(ray="local", actors=args.cpus, cpus_per_actor=1), say=quiet)
        ray.shutdown()
        ra, rb = rows(local), rows(on_ray)
        same = sorted(ra) == sorted(rb)
        diff = max(float(np.abs(ra[k] - rb[k]).max()) for k in ra) if same else float("nan")
    print(f"{len(sources)} sources, {a.windows} windows, {args.cpus} CPU(s); Ray cluster start {start:.1f} s (not counted)")
    print(f"{'':28s} {'seconds':>8s} {'videos/s':>9s} {'windows/s':>10s} {'× local':>8s}")
    for name, r in (("single process", a), (f"Ray Data, {args.cpus} actors", b)):
        print(f"{name:28s} {r.seconds:8.1f} {r.added / r.seconds:9.2f} {r.windows / r.seconds:10.1f} {a.seconds / r.seconds:8.2f}")
    print(f"libraries equal: {same} (same rows); largest embedding difference {diff:.2e}")


if __name__ == "__main__":
    main()
