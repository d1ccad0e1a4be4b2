"""Nearest neighbours over the library's vectors, with FAISS.

The vectors are L2-normalised, so the inner product is the cosine. Below `EXACT_BELOW`
vectors the index is exact (IndexFlatIP: a query costs one matrix-vector product, 3 ms
at 10^5 × 128, 19 ms at 10^5 × 512); above it, an inverted file (IVF-Flat: √n k-means cells, a query scans
`nprobe` of them), whose recall against exact search and query times at 10^5 and 10^6
are measured by scripts/bench_faiss.py (docs/results.md). IVF rather than HNSW: its build is
k-means on a sample plus one assignment per vector (43 s for 10^6 × 512 on 2 cores), and its
memory is the vectors plus a list id each, where HNSW adds a graph of links per vector.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PRPError, UsageError

EXACT_BELOW = 100_000
SCAN_BUDGET = 25_000  # vectors an IVF query scans by default (scripts/bench_faiss.py: recall against time)
KINDS = ("auto", "exact", "ivf")


def faiss_module():
    try:
        import faiss
    except ImportError:
        raise PRPError("the video library needs faiss-cpu: pip install 'prp-deploy[search]'") from None
    return faiss


@dataclass(frozen=True)
class IndexPlan:
    kind: str  # "exact" | "ivf"
    nlist: int = 0
    nprobe: int = 0

    def describe(self) -> str:
        return "exact inner product" if self.kind == "exact" else f"IVF-Flat, {self.nlist} cells, {self.nprobe} probed"


def plan_index(n: int, kind: str = "auto", nprobe: int | None = None) -> IndexPlan:
    """Exact below EXACT_BELOW vectors (or when asked), else IVF with √n cells, a query scanning
    the cells that hold about SCAN_BUDGET vectors (or `nprobe` of them)."""
    if kind not in KINDS:
        raise UsageError(f"--index must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "exact" or (kind == "auto" and n < EXACT_BELOW):
        return IndexPlan("exact")
    nlist = max(1, min(int(math.sqrt(n)), n // 39))
    # Probe enough cells to scan about SCAN_BUDGET vectors: a fixed fraction of cells is too few
    # for a small index (recall 0.91 at 10^5, nlist/16) and too slow for a large one (12 ms at 10^6 × 512).
    return IndexPlan("ivf", nlist, min(nlist, nprobe or max(8, math.ceil(nlist * SCAN_BUDGET / n))))


def build_index(vectors: np.ndarray, plan: IndexPlan, seed: int = 0):
    faiss = faiss_module()
    vectors = np.ascontiguousarray(vectors, np.float32)
    d = vectors.shape[1]
    if plan.kind == "exact":
        index = faiss.IndexFlatIP(d)
    else:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, plan.nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        # 64 points a cell train k-means well (FAISS warns below 39); more only costs time.
        train = vectors if len(vectors) <= 64 * plan.nlist else vectors[np.sort(rng.choice(len(vectors), 64 * plan.nlist, replace=False))]
        index.cp.seed = seed  # k-means seeded: the same library gives the same index
        index.train(train)
        index.nprobe = plan.nprobe
    index.add(vectors)
    return index


def search_index(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row numbers), each (Q, k); -1 rows where fewer than k exist."""
    return index.search(np.ascontiguousarray(queries, np.float32), min(k, index.ntotal))


def save_index(index, file: Path, facts: dict) -> None:
    """The index and a JSON sidecar saying what it covers, both renamed into place."""
    faiss = faiss_module()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, file)
    side = file.with_suffix(".json")
    tmp = side.with_name(f".{side.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    os.replace(tmp, side)


def load_index(file: Path, parts: list[str], rows: int):
    """The saved index if it covers exactly these parts and rows, else None (rebuild)."""
    side = file.with_suffix(".json")
    if not file.exists() or not side.exists():
        return None
    try:
        facts = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if facts.get("parts") != parts or facts.get("rows") != rows:
        return None
    try:
        index = faiss_module().read_index(str(file))
    except RuntimeError:
        return None  # damaged: rebuilt from the parts, which are the truth
    if facts.get("nprobe"):
        index.nprobe = facts["nprobe"]
    return index
