"""The library's nearest-neighbour search at scale: exact (IndexFlatIP) against the IVF index
that `index` builds above 100,000 vectors (prp_deploy/library/index.py), in one run so the
ratios are comparable on a noisy machine (issue 19; docs/results.md).

Vectors of the library's real dimensions (128 at the tiny preset, 512 at the paper's input),
L2-normalised, drawn as a mixture around 10,000 random centres (a video archive is clumpy:
near-duplicates, shots of one scene; uniform random vectors would have no neighbours worth the
name). Queries are 1,000 fresh draws. Per size: build time, bytes per vector, one-query
latency p50/p99 (queries one at a time, as `search` asks), recall@10 against exact search,
and IVF at a few nprobe values around the default.

    python scripts/bench_faiss.py --sizes 100000,1000000 --dims 128,512
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from prp_deploy.library.index import build_index, plan_index


def vectors(n: int, d: int, centres: np.ndarray, rng, spread: float = 0.35) -> np.ndarray:
    """n draws around random centres; done in chunks to bound memory."""
    out = np.empty((n, d), np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        x = centres[rng.integers(0, len(centres), b - a)] + spread * rng.standard_normal((b - a, d), dtype=np.float32) / np.sqrt(d)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def latency(index, queries: np.ndarray, k: int = 10, n: int = 300) -> tuple[float, float]:
    times = []
    for q in queries[:n]:
        t = time.perf_counter()
        index.search(q[None], k)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.percentile(times, 50)), 1e3 * float(np.percentile(times, 99))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--dims", default="128,512")
    p.add_argument("--queries", type=int, default=1000)
    args = p.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print(f"{'n':>9s} {'d':>4s} {'index':34s} {'build s':>8s} {'B/vector':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'recall@10':>9s}")
    for d in map(int, args.dims.split(",")):
        for n in map(int, args.sizes.split(",")):
            rng = np.random.default_rng(0)
            centres = rng.standard_normal((10_000, d), dtype=np.float32)
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
            x = vectors(n, d, centres, rng)
            q = vectors(args.queries, d, centres, rng)
            t = time.perf_counter()
            exact = build_index(x, plan_index(n, "exact"))
            build_exact = time.perf_counter() - t
            _, truth = exact.search(q, 10)  # batched: the ground truth
            p50, p99 = latency(exact, q)
            size = len(faiss.serialize_index(exact)) / n
            print(f"{n:9d} {d:4d} {'exact (IndexFlatIP)':34s} {build_exact:8.2f} {size:9.0f} {p50:7.2f} {p99:7.2f} {1.0:9.3f}")
            plan = plan_index(n, "ivf")
            t = time.perf_counter()
            ivf = build_index(x, plan)
            build_ivf = time.perf_counter() - t
            size = len(faiss.serialize_index(ivf)) / n
            for nprobe in sorted({max(1, plan.nprobe // 4), max(1, plan.nprobe // 2), plan.nprobe, min(plan.nlist, plan.nprobe * 2)}):
                ivf.nprobe = nprobe
                _, found = ivf.search(q, 10)
                p50, p99 = latency(ivf, q)
                tag = f"IVF-Flat {plan.nlist} cells, nprobe {nprobe}" + (" *" if nprobe == plan.nprobe else "")
                print(f"{n:9d} {d:4d} {tag:34s} {build_ivf:8.2f} {size:9.0f} {p50:7.2f} {p99:7.2f} {recall(found, truth):9.3f}")
            del x, exact, ivf
    print("* the default nprobe (the cells holding about 25,000 vectors); auto uses exact below 100,000 vectors, IVF from there")


if __name__ == "__main__":
    main()
