"""The library tests' shared checks: libraries (incremental, on Ray) must equal the one made locally
in one go (the `library` fixture, in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def videos_of(exported: Path) -> list[Path]:
    return sorted((exported.parent.parent / "data" / "UCF-101").rglob("*.avi"))


def library_rows(lib) -> tuple[dict, dict]:
    """{source: (video embedding, labels)}, {(source, window): embedding}: a library's content, order-free."""
    v = {r["source"]: (np.asarray(r["embedding"]), r["top_labels"]) for r in lib.table("videos").to_pylist()}
    w = {(r["source"], r["window"]): np.asarray(r["embedding"]) for r in lib.table("windows").to_pylist()}
    return v, w


def assert_same_library(a, b, atol: float = 1e-5) -> None:
    va, wa = library_rows(a)
    vb, wb = library_rows(b)
    assert sorted(va) == sorted(vb) and sorted(wa) == sorted(wb)
    assert len(a.table("windows")) == len(wa)  # no duplicated row
    for s in va:
        np.testing.assert_allclose(va[s][0], vb[s][0], atol=atol)
        assert va[s][1] == vb[s][1]
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], atol=atol)
