"""The video library: `index` and `search` on a real export and real video files (ONNX Runtime,
OpenCV, pyarrow and FAISS all run here), incremental adds, failures, a foreign model, a
corrupt part, and the same job on a local Ray cluster of 2 CPUs (tests/library/test_cluster.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("faiss")

from prp_deploy import Recognizer  # noqa: E402
from prp_deploy.errors import PRPError, UsageError  # noqa: E402
from prp_deploy.library import IndexOptions, Library  # noqa: E402
from prp_deploy.library.index import EXACT_BELOW, SCAN_BUDGET, build_index, plan_index, search_index  # noqa: E402
from tests.library.conftest import assert_same_library, videos_of  # noqa: E402

CLI = [sys.executable, "-m", "prp_deploy"]


def test_rows_are_the_runtimes_features_pooled_per_channel(library, exported):
    """Each window's vector is the runtime's `features` of that window, averaged per conv5 channel and
    L2-normalised; each video's is the normalised mean of its windows'; labels are the video's top-k."""
    meta = library.meta
    info = json.loads((exported / "model.json").read_text())
    channels = info["feature_channels"]
    assert meta["dim"] == channels and meta["embedding"]["output_dim"] == info["outputs"]["features"][1]
    assert meta["counts"]["videos"] == len(videos_of(exported)) and meta["counts"]["failed"] == 0
    video = str(videos_of(exported)[4].absolute())
    records = list(Recognizer(exported).stream(video, task="both"))
    raw = np.stack([r["features"] for r in records]).reshape(len(records), channels, -1).mean(-1)
    windows = [r for r in library.table("windows").to_pylist() if r["source"] == video]
    assert [w["window"] for w in windows] == [r["window"] for r in records]
    assert [(w["start_frame"], w["end_frame"]) for w in windows] == [(r["start_frame"], r["end_frame"]) for r in records]
    for w, v in zip(windows, raw):
        np.testing.assert_allclose(w["embedding"], v / np.linalg.norm(v), atol=1e-5)
    row = next(r for r in library.table("videos").to_pylist() if r["source"] == video)
    mean = raw.mean(0)
    np.testing.assert_allclose(row["embedding"], mean / np.linalg.norm(mean), atol=1e-5)
    mean_logits = np.mean([np.log(r["probs"]) for r in records], axis=0)  # log-softmax differs from logits by a constant
    assert row["top_labels"][0] == Recognizer(exported).classes[int(np.argmax(mean_logits))]
    assert row["windows"] == len(records) and row["status"] == "ok" and len(row["sha256"]) == 64


def test_search_finds_the_nearest_by_the_stored_vectors(library, exported):
    """A source in the library queries by its stored vector, without itself; the ranking is the exact cosine order."""
    video = str(videos_of(exported)[0].absolute())
    hits = library.search(video, k=5)
    table = library.table("videos").to_pylist()
    vecs = {r["source"]: np.asarray(r["embedding"]) for r in table}
    expected = sorted((s for s in vecs if s != video), key=lambda s: -float(vecs[s] @ vecs[video]))[:5]
    assert [h.source for h in hits] == expected
    assert [round(h.score, 5) for h in hits] == [round(float(vecs[s] @ vecs[video]), 5) for s in expected]
    assert all(h.source != video for h in hits)
    assert library.search(video, k=3, include_self=True)[0].source == video


def test_a_new_file_and_a_span_are_embedded_with_the_librarys_model(library, exported, make_video, tmp_path):
    """A video not in the library is embedded by the library's model; a copy of a library video
    (same content, another path) is that video; a span keeps the windows whose middle lies in it."""
    src = videos_of(exported)[2]
    copy = tmp_path / "copy.avi"
    shutil.copy(src, copy)
    assert library.query_vector(str(copy)).source == str(src.absolute())
    hits = library.search(str(copy), k=3)
    assert str(src.absolute()) not in [h.source for h in hits]

    frames = [np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8) for i in range(40)]
    from tests.conftest import write_video

    new = write_video(tmp_path / "noise.avi", frames)
    q = library.query_vector(str(new))
    assert q.source == str(new.absolute()) and q.windows > 1
    span = library.query_vector(f"{new}@0.0-0.4")
    assert 1 <= span.windows < q.windows
    hits = library.search(f"{new}@0.0-0.4", k=4, by="window")
    assert len(hits) == 4 and all(h.window is not None for h in hits)
    with pytest.raises(UsageError, match="no window of"):
        library.query_vector(f"{new}@30-31")
    with pytest.raises(UsageError, match="FILE@START-END"):
        library.query_vector(f"{new}@abc")


def test_adding_again_embeds_only_what_is_new(exported, tmp_path, library):
    """Half, then all: the second run embeds the other half only, and the library equals one made in one go."""
    videos = [str(p) for p in videos_of(exported)]
    lib = Library(tmp_path / "lib")
    first = lib.add(videos[::2], exported, say=lambda s: None)
    second = lib.add(videos, say=lambda s: None)  # the library's own model, not named again
    assert (first.added, second.added, second.skipped) == (len(videos[::2]), len(videos) - len(videos[::2]), len(videos[::2]))
    assert lib.add(videos, say=lambda s: None).added == 0
    assert_same_library(lib, library)
    assert [j["added"] for j in lib.meta["jobs"]] == [len(videos[::2]), len(videos) - len(videos[::2]), 0]
    # A file that changed is embedded again and its new rows replace the old ones.
    changed = tmp_path / "changed.avi"
    shutil.copy(videos[0], changed)
    assert lib.add([str(changed)], say=lambda s: None).added == 0  # same content as videos[0]
    from tests.conftest import write_video

    write_video(changed, [np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8) for i in range(30)])
    assert lib.add([str(changed)], say=lambda s: None).added == 1
    rows = [r for r in lib.table("videos").to_pylist() if r["source"] == str(changed.absolute())]
    assert len(rows) == 1


def test_failed_sources_are_listed_and_the_job_goes_on(exported, tmp_path):
    """A corrupt file and a missing one: exit 1 with one line, both listed with their reasons, the others indexed."""
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00not a video" * 100)
    good = [str(p) for p in videos_of(exported)[:3]]
    out = tmp_path / "lib"
    r = subprocess.run([*CLI, "index", *good, str(bad), str(tmp_path / "gone.avi"), "--model", str(exported), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "2 source(s) failed" in r.stderr.splitlines()[-1]
    rows = {Path(x["source"]).name: x for x in Library(out).table("videos").to_pylist()}
    assert rows["bad.avi"]["status"] == "failed" and rows["bad.avi"]["error"]
    assert rows["gone.avi"]["status"] == "failed" and "no such file" in rows["gone.avi"]["error"]
    assert sum(x["status"] == "ok" for x in rows.values()) == 3
    assert Library(out).meta["counts"] == {**Library(out).meta["counts"], "videos": 3, "failed": 2}


def test_a_library_of_another_model_is_refused(library, exported, tmp_path):
    """The same export with one weight changed (another model.onnx sha256) may not add to the library."""
    import onnx
    from onnx import numpy_helper

    other = tmp_path / "other"
    shutil.copytree(exported, other)
    graph = onnx.load(str(other / "model.onnx"))
    w = graph.graph.initializer[0]
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.01, w.name))
    onnx.save(graph, str(other / "model.onnx"))
    r = subprocess.run([*CLI, "index", str(videos_of(exported)[0]), "--model", str(other), "--out", str(library.path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "made by another model" in r.stderr and "new --out" in r.stderr


def test_a_corrupt_part_is_named_with_its_repair(exported, tmp_path):
    """A damaged Parquet file: search and index say which, and how to repair; doing so restores the library."""
    videos = [str(p) for p in videos_of(exported)[:4]]
    out = tmp_path / "lib"
    Library(out).add(videos, exported, IndexOptions(commit_every=2), say=lambda s: None)
    parts = Library(out).store.part_dirs()
    assert len(parts) == 2
    victim = parts[1] / "windows.parquet"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    r = subprocess.run([*CLI, "search", videos[0], "--library", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert str(victim) in line and "corrupt part" in line and f"remove the folder {parts[1]}" in line
    shutil.rmtree(parts[1])
    again = Library(out).add(videos, say=lambda s: None)
    assert again.added == 2 and again.skipped == 2
    assert len(Library(out).search(videos[0], k=10)) == 3


def test_search_cli_lines_jsonl_and_page(library, exported, tmp_path):
    video = str(videos_of(exported)[1])
    r = subprocess.run([*CLI, "search", video, "--library", str(library.path), "--topk", "3", "--html", str(tmp_path / "page.html")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines()]  # a pipe gets JSONL
    assert [l["rank"] for l in lines] == [1, 2, 3] and all(l["labels"] for l in lines)
    page = (tmp_path / "page.html").read_text()
    assert page.count('class="hit"') == 3 and "http" not in page.replace("http-equiv", "")  # nothing fetched from a network
    import base64

    import cv2

    images = [p.split('"', 1)[0] for p in page.split('src="data:image/jpeg;base64,')[1:]]
    assert len(images) == 4 * 4  # the query's strip and three hits'
    assert all(cv2.imdecode(np.frombuffer(base64.b64decode(i), np.uint8), cv2.IMREAD_COLOR) is not None for i in images)
    r = subprocess.run([*CLI, "search", video + "@5-1", "--library", str(library.path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = subprocess.run([*CLI, "search", video, "--library", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not a video library" in r.stderr


def test_where_restricts_the_gallery(library, exported):
    cls = videos_of(exported)[0].parent.name
    hits = library.search(str(videos_of(exported)[0]), k=50, where=f"*/{cls}/*")
    assert hits and all(f"/{cls}/" in h.source for h in hits)
    assert len(hits) == sum(1 for p in videos_of(exported) if p.parent.name == cls) - 1


def test_index_kind_exact_below_the_threshold_and_ivf_above():
    """auto: exact under EXACT_BELOW vectors, IVF above (√n cells); IVF probing every cell is exact search."""
    assert plan_index(EXACT_BELOW - 1).kind == "exact"
    plan = plan_index(EXACT_BELOW)
    assert plan.kind == "ivf" and plan.nlist == int(EXACT_BELOW ** 0.5) and plan.nprobe == -(-plan.nlist * SCAN_BUDGET // EXACT_BELOW)
    assert plan_index(10**6).nprobe == 25  # the cells of about SCAN_BUDGET vectors: fewer of them as the index grows
    with pytest.raises(UsageError):
        plan_index(10, "hnsw")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = build_index(x, plan_index(len(x), "exact"))
    full = plan_index(len(x), "ivf", nprobe=10_000)
    assert full.nprobe == full.nlist
    ivf = build_index(x, full)
    q = x[:50] + 0.1 * rng.normal(size=(50, 32)).astype(np.float32)
    _, a = search_index(exact, q, 10)
    _, b = search_index(ivf, q, 10)
    assert (a == b).all()


def test_without_the_extra_the_commands_say_what_to_install(tmp_path):
    """The bare runtime has no pyarrow: index says which extra to install (checked by hiding it)."""
    (tmp_path / "library.json").write_text('{"schema_version": 1, "dim": 4}')
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['faiss'] = None\n"
            "from prp_deploy.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, "search", "x.mp4", "--library", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "pip install 'prp-deploy[search]'" in r.stderr and "Traceback" not in r.stderr


def test_index_out_must_be_a_library_or_a_new_folder(exported, tmp_path):
    """--out naming a video file or a folder of other files is refused (exit 2) before anything is written."""
    video = videos_of(exported)[0]
    folder = video.parent
    before = sorted(p.name for p in folder.iterdir())
    for out in (video, folder):
        r = subprocess.run([*CLI, "index", str(video), "--model", str(exported), "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == before
    r = subprocess.run([*CLI, "search", str(video), "--library", str(tmp_path), "--html", str(video)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and ".html" in r.stderr


def test_index_a_span_of_each_file_and_again_with_another(exported, tmp_path):
    """--start/--end: a file's entry holds the windows of that span only, with the file's own
    times, equal to the whole file's windows there; the same span again is skipped, another
    replaces the entry; --start not before --end is a usage error before anything is written."""
    from tests.av_videos import encode

    video = str(encode(tmp_path / "long.mp4", 300, size=(80, 60)))  # 12 s
    whole = Library(tmp_path / "whole")
    whole.add([video], exported, say=lambda s: None)
    lib = Library(tmp_path / "lib")
    assert lib.add([video], exported, IndexOptions(start=4.0, end=8.0), say=lambda s: None).added == 1
    windows = lib.table("windows").to_pylist()
    assert windows and all(4.0 <= w["start_s"] and w["end_s"] < 8.0 for w in windows)
    same = {w["start_frame"]: w for w in whole.table("windows").to_pylist()}
    for w in windows:
        assert w["start_s"] == same[w["start_frame"]]["start_s"]
        np.testing.assert_allclose(w["embedding"], same[w["start_frame"]]["embedding"], atol=1e-4)
    row = lib.table("videos").to_pylist()[0]
    assert (row["span_start_s"], row["span_end_s"]) == (4.0, 8.0)
    assert whole.table("videos").to_pylist()[0]["span_start_s"] is None
    assert lib.add([video], options=IndexOptions(start=4.0, end=8.0), say=lambda s: None).skipped == 1
    assert lib.add([video], options=IndexOptions(start=8.0), say=lambda s: None).added == 1
    rows = lib.table("videos").to_pylist()
    assert len(rows) == 1 and rows[0]["span_start_s"] == 8.0
    assert all(w["start_s"] >= 8.0 for w in lib.table("windows").to_pylist())
    r = subprocess.run([*CLI, "index", video, "--out", str(tmp_path / "bad"), "--model", str(exported), "--start", "5", "--end", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "must come before --end" in r.stderr and not (tmp_path / "bad").exists()
