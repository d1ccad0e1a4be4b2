"""Shared fixtures: a private cache per test session, small real videos made on the spot,
and the real UCF101/HMDB51 clips from ../shared (required when CI=true)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "data" / "clips"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Caches (frame counts, frame cache, built-in dataset) go to a temp folder, never ~/.cache."""
    cache = tmp_path_factory.mktemp("prp-cache")
    old = os.environ.get("PRP_DEPLOY_CACHE")
    os.environ["PRP_DEPLOY_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("PRP_DEPLOY_CACHE", None)
    else:
        os.environ["PRP_DEPLOY_CACHE"] = old


def index_frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A BGR frame whose flat grey level encodes i (survives lossy codecs to ±3 levels)."""
    return np.full((height, width, 3), (i * 7) % 256, np.uint8)


def decoded_index(frame: np.ndarray) -> int:
    """Inverse of index_frame for i < 37."""
    return int(round(float(frame.mean()) / 7))


def write_video(path: Path, frames, fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    frames = list(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture
def make_video(tmp_path):
    """make_video(name, n_frames, width=64, height=48) → path of an MJPG .avi with index_frame(i) frames."""

    def make(name: str, n: int, width: int = 64, height: int = 48, fps: float = 25.0) -> Path:
        return write_video(tmp_path / name, (index_frame(i, width, height) for i in range(n)), fps)

    return make


def shared_clips(sub: str) -> Path:
    """A folder of real clips; missing is a skip locally and a failure under CI=true."""
    folder = SHARED_CLIPS / sub
    if not folder.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{folder} is missing: CI must have ../shared beside the clone")
        pytest.skip(f"{folder} not present (real clips live in ../shared/data/clips)")
    return folder


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A real export folder (a tiny R3D trained 150 steps) of 3 synthetic classes; its videos in
    `exported.parent.parent / "data"` (runtime and library tests)."""
    from prp_deploy.data.synth import SynthSpec, write_synthetic
    from prp_deploy.export.pipeline import ExportOptions, export
    from tests.runs import make_run

    root = tmp_path_factory.mktemp("rt")
    data = write_synthetic(root / "data", SynthSpec(classes=3, groups=3, clips_per_group=2, width=64, height=48, min_frames=20, max_frames=30))
    run = make_run(root / "run", data, "r3d", seed=3)
    export(run, ExportOptions(parity_clips=12), say=lambda s: None)
    return run / "export"


@pytest.fixture(scope="session")
def evaluated_run(exported, tmp_path_factory):
    """The test export's run folder, evaluated (eval.json with its confusion matrix and retrieval examples)."""
    from prp_deploy.training.pipeline import train
    from tests.runs import tiny_run_config

    run = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(exported.parent, run)
    said: list[str] = []
    train(tiny_run_config(exported.parent.parent / "data", "r3d", seed=3), stage="eval", out=run, say=said.append)  # the fixture's config
    assert (run / "report.html").exists() and any(s.startswith("report: ") for s in said), said  # train writes it at the end
    return run


@pytest.fixture(scope="session")
def library(exported, tmp_path_factory):
    """A video library (tests/library) of the `exported` model's videos, made in one go."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("faiss")
    from prp_deploy.library import Library

    lib = Library(tmp_path_factory.mktemp("lib") / "lib")
    videos = sorted((exported.parent.parent / "data" / "UCF-101").rglob("*.avi"))
    report = lib.add([str(p) for p in videos], exported, say=lambda s: None)
    assert report.added == len(videos) and not report.failed
    return lib
