"""What a new user hit on day one (issue 17): two outputs on one path, aborts (exit 134) at
exit, an overlay without its timeline, and the Python API's gaps. Each case runs as the
user ran it: real processes, real videos, real ONNX Runtime."""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from prp_deploy import Recognizer, Segmenter
from prp_deploy.runtime.output_paths import plan_outputs
from prp_deploy.runtime.overlay import draw_label, timeline_height
from prp_deploy.runtime.sources import FrameReader
from tests.av_videos import opencv_frames
from tests.conftest import REPO, shared_clips
from tests.runtime.conftest import LEVELS
from tests.runtime.test_many import cli, grey_video

ABORT_MARKS = ("terminate called", "FATAL", "Traceback", "Aborted", "exception not rethrown")


def _no_abort(stderr: str) -> bool:
    return not any(m in stderr for m in ABORT_MARKS)


# -- No two outputs on one path ------------------------------------------------------------

# (the flags, given inside an output folder OUT; the two flags the error must name)
CLASHES = [
    (["--out", "OUT/a.jsonl", "--features", "OUT/a.npy"], "--features' row index", "--out"),
    (["--out", "OUT/a.npy", "--features", "OUT/a.npy"], "--features", "--out"),
    (["--out", "OUT/a.mp4", "--overlay", "OUT/a.mp4"], "--overlay", "--out"),
    (["--out", "OUT/a.jsonl", "--segments", "--features", "OUT/a.segments.npy"], "--features' row index", "--segments' file"),
    (["--out", "OUT/a.jsonl", "--segments", "--overlay", "OUT/a.segments.jsonl"], "--overlay", "--segments' file"),
    (["--features", "OUT/a.npy", "--overlay", "OUT/a.npy"], "--overlay", "--features"),
    (["--features", "OUT/a.npy", "--overlay", "OUT/a.jsonl"], "--overlay", "--features' row index"),
    (["--features", "OUT/a.jsonl"], "--features' row index", "--features"),
    (["--out", "VIDEO"], "--out", "the source video"),
    (["--overlay", "VIDEO"], "--overlay", "the source video"),
    (["--out", "MODEL/model.json"], "--out", "the model's file"),
]


@pytest.mark.parametrize("flags,first,second", CLASHES, ids=[" ".join(c[0]) for c in CLASHES])
def test_two_outputs_on_one_path_are_a_usage_error_before_anything_is_written(flags, first, second, brightness_model, tmp_path):
    video = grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 30)])
    out = tmp_path / "out"
    before = video.read_bytes()
    model_files = {p.name: p.read_bytes() for p in brightness_model.iterdir()}
    subs = {"OUT": str(out), "VIDEO": str(video), "MODEL": str(brightness_model)}
    args = [next((a.replace(k, v) for k, v in subs.items() if a.startswith(k)), a) for a in flags]
    r = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified", "--task", "both", *args)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 2, r.stderr
    assert len(errors) == 1 and first in errors[0] and second in errors[0] and "same file" in errors[0], r.stderr
    assert _no_abort(r.stderr)
    assert not out.exists() or not any(out.iterdir())  # nothing written
    assert video.read_bytes() == before and {p.name: p.read_bytes() for p in brightness_model.iterdir()} == model_files


def test_the_reported_command_is_refused_and_the_same_outputs_apart_are_whole(brightness_model, tmp_path):
    """The day-one command: --features out/skate.npy beside --out out/skate.jsonl shared one file."""
    clip = shared_clips("ucf101") / "v_SkateBoarding_g02_c01.mp4"
    out = tmp_path / "out"
    common = ["run", str(clip), "--model", str(brightness_model), "--allow-unverified", "--segments", "--overlay", str(out / "skate.mp4")]
    r = cli(*common, "--features", str(out / "skate.npy"), "--out", str(out / "skate.jsonl"))
    assert r.returncode == 2 and "--features' row index" in r.stderr and "--out" in r.stderr and _no_abort(r.stderr), r.stderr
    assert not out.exists() or not any(out.iterdir())
    r = cli(*common, "--features", str(out / "skate-features.npy"), "--out", str(out / "skate.jsonl"))
    assert r.returncode == 0, r.stderr
    records = [json.loads(l) for l in (out / "skate.jsonl").read_text().splitlines()]
    index = [json.loads(l) for l in (out / "skate-features.jsonl").read_text().splitlines()]
    assert records and all("top" in x for x in records) and [x["window"] for x in index] == [x["window"] for x in records]
    assert np.load(out / "skate-features.npy").shape[0] == len(records)


def test_several_sources_get_stems_that_never_clash_with_each_other_or_the_run_logs(brightness_model, tmp_path):
    videos = tmp_path / "videos"
    for name in ("x.avi", "x.features.avi", "sources.avi", "x.segments.avi"):
        grey_video(videos / name, [(LEVELS["mid"], 12)])
    out = tmp_path / "res"
    r = cli("run", str(videos), "--model", str(brightness_model), "--allow-unverified", "--segments", "--out", str(out), "--features", str(out), "-q")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (out / "sources.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert len({r["output"] for r in rows}) == 4 and "sources" not in {r["output"] for r in rows}
    for row in rows:  # each source's records are its own, whole
        records = [json.loads(l) for l in (out / f"{row['output']}.jsonl").read_text().splitlines()]
        assert records and {x["source"] for x in records} == {row["source"]} and all("top" in x for x in records)
        assert np.load(out / f"{row['output']}.features.npy").shape[0] == len(records)


def test_the_plan_numbers_a_stem_instead_of_overwriting(tmp_path):
    plan = plan_outputs(["a/x.avi", "b/x.features.avi"], ["x", "x.features"], True, tmp_path, tmp_path, None, True)
    paths = [p for files in plan.files.values() for _, p in files.items()] + [plan.log, plan.summary]
    assert len(set(paths)) == len(paths) and plan.stems["b/x.features.avi"] == "x.features-2"


def test_an_output_named_as_a_folder_takes_a_file_per_source(brightness_model, tmp_path):
    """`--overlay out/ovdir/` with one source: the overlay goes in that folder (it aborted with exit 134)."""
    video = grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 30)])
    r = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified", "--overlay", str(tmp_path / "ovdir") + "/")
    assert r.returncode == 0 and _no_abort(r.stderr), r.stderr
    assert cv2.VideoCapture(str(tmp_path / "ovdir" / "v.overlay.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 30


# -- Clean exits -------------------------------------------------------------------------


def _long_video(tmp_path: Path, n: int = 900) -> Path:
    return grey_video(tmp_path / "long.avi", [(LEVELS["dark"], n // 3), (LEVELS["mid"], n // 3), (LEVELS["bright"], n // 3)], size=(32, 24))


def test_a_closed_pipe_ends_the_run_quietly_with_sigpipes_status(exported, tmp_path):
    """`prp-deploy run v.mp4 | head -1` aborted with "terminate called without an active exception" (134)."""
    video = _long_video(tmp_path)
    for attempt in range(2):
        cmd = (f"set -o pipefail; {sys.executable} -m prp_deploy run {video} --model {exported} --stride 1 --batch 1 "
               f"2>{tmp_path / 'err.txt'} | head -1")
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
        stderr = (tmp_path / "err.txt").read_text()
        assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["window"] == 0
        assert r.returncode == 128 + signal.SIGPIPE, stderr
        assert _no_abort(stderr) and "Broken pipe" not in stderr and "BrokenPipeError" not in stderr, stderr


SCRIPTS = {
    "break at the end of a script": """
        for record in rec.stream(VIDEO):
            break
    """,
    "a started generator kept to the end": """
        g = rec.stream(VIDEO)
        first = next(g)
    """,
    "stream_many, broken out of": """
        for record in rec.stream_many([VIDEO, VIDEO2]):
            break
    """,
}


@pytest.mark.parametrize("case", list(SCRIPTS))
def test_a_script_that_leaves_a_stream_early_exits_cleanly(case, brightness_model, tmp_path):
    """`for rec in rec.stream(...): break` at the end of a script aborted with "FATAL: exception not rethrown" (134)."""
    video = _long_video(tmp_path)
    video2 = grey_video(tmp_path / "second.avi", [(LEVELS["mid"], 300)], size=(32, 24))
    script = tmp_path / "app.py"
    script.write_text(f"from prp_deploy import Recognizer\nrec = Recognizer({str(brightness_model)!r}, allow_unverified=True)\n"
                      f"VIDEO, VIDEO2 = {str(video)!r}, {str(video2)!r}\n" + textwrap.dedent(SCRIPTS[case]))
    for attempt in range(3):  # the abort was 3 of 3 before the fix
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert r.returncode == 0 and _no_abort(r.stderr), (attempt, r.returncode, r.stderr)


def test_an_error_in_the_middle_of_a_run_leaves_no_reader_behind(brightness_model, tmp_path):
    """An overlay that cannot be written fails the run in one line, with the readers still decoding: exit 1, no abort."""
    video = _long_video(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    r = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified", "--overlay", str(tmp_path / "file" / "x.mp4"))
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1 and "x.mp4" in errors[0] and _no_abort(r.stderr), r.stderr


def test_closing_a_stream_stops_and_joins_its_readers(brightness_model, tmp_path):
    video = _long_video(tmp_path)
    rec = Recognizer(brightness_model, allow_unverified=True)
    g = rec.stream(video)
    next(g)
    assert FrameReader.process_open.now == 1
    g.close()
    assert FrameReader.process_open.now == 0  # released by the reader thread itself, so it has left OpenCV


# -- The overlay -------------------------------------------------------------------------


def test_the_segment_timeline_is_drawn_on_a_real_clip_whose_container_hides_its_length(exported, tmp_path):
    """v_SkateBoarding (340×256 MPEG-4) reports a negative frame count: the timeline was never drawn."""
    clip = shared_clips("ucf101") / "v_SkateBoarding_g02_c01.mp4"
    assert cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT) <= 0  # the case itself
    r = cli("run", str(clip), "--model", str(exported), "--segments", "--threshold", "0.3", "--hysteresis", "0.2",
            "--overlay", str(tmp_path / "o.mp4"), "--out", str(tmp_path / "o.jsonl"))
    assert r.returncode == 0, r.stderr
    original, drawn = opencv_frames(clip), opencv_frames(tmp_path / "o.mp4")
    assert len(drawn) == len(original) and drawn[0].shape == (256, 340, 3)
    bar = timeline_height(256)
    for i in (0, len(drawn) // 2, len(drawn) - 1):
        a, b = original[i].astype(int), drawn[i].astype(int)
        bottom = np.abs(a[-bar:] - b[-bar:]).mean()
        middle = np.abs(a[100:200, 40:300] - b[100:200, 40:300]).mean()  # no drawing here: only the codec's noise
        assert bottom > 25 and middle < 6, (i, bottom, middle)
        # The white cursor: at frame i of the frames known so far, so never left of i of the whole.
        row = b[-bar // 2].min(axis=1)
        assert row.max() > 180 and int(row.argmax()) >= int(i * 340 / len(original)) - 3, (i, row.max(), row.argmax())
    assert int(b[-bar // 2].min(axis=1).argmax()) >= 330  # the last frame's cursor is at the right end


@pytest.mark.parametrize("size", [(48, 36), (64, 48), (340, 256), (1920, 1080)])
@pytest.mark.parametrize("text", ["SlideRight 0.97", "ApplyEyeMakeup_and_a_much_longer_name 0.51"])
def test_the_label_fits_any_frame(size, text):
    w, h = size
    frame = np.full((h, w, 3), 90, np.uint8)
    x0, y0, x1, y1 = draw_label(frame, text, bottom_reserved=timeline_height(h))
    assert 0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - timeline_height(h)
    changed = np.abs(frame.astype(int) - 90).sum(2) > 0
    assert changed.any() and not changed[:, -1].any() and not changed[-timeline_height(h):].any()  # nothing at the edge


# -- The Python API ----------------------------------------------------------------------


def test_stream_records_carry_features_and_every_class_probability(brightness_model, tmp_path):
    video = grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 40), (LEVELS["bright"], 40)])
    rec = Recognizer(brightness_model, allow_unverified=True)
    records = list(rec.stream(video, stride=4))
    assert all(r["features"].shape == (1,) and r["probs"].shape == (3,) for r in records)
    assert np.allclose([r["probs"].sum() for r in records], 1.0, atol=1e-5)
    assert all(rec.classes[int(r["probs"].argmax())] == r["top"][0]["label"] for r in records)
    features_only = list(rec.stream(video, task="features"))
    assert all("features" in r and "probs" not in r for r in features_only)
    seg = Segmenter(rec.classes)
    found = [s for r in records for s in seg.push_record(r)] + seg.finish()
    assert [s.label for s in found] == ["dark", "bright"]


def test_recognizer_defaults_to_the_newest_export_and_names_unknown_options(brightness_model, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(brightness_model, tmp_path / "runs" / "r1" / "export")
    monkeypatch.chdir(tmp_path)
    rec = Recognizer(allow_unverified=True)  # a hand-written graph: no parity has judged it
    assert rec.model.resolve() == (tmp_path / "runs" / "r1" / "export").resolve() and Recognizer.__doc__
    with pytest.raises(TypeError, match=r"Recognizer.stream\(\) got an unexpected keyword argument 'segments'; it takes task, stride"):
        rec.stream("v.avi", segments=True)
    with pytest.raises(TypeError, match=r"Recognizer.stream_many\(\) got an unexpected keyword argument 'overlay'"):
        rec.stream_many(["v.avi"], overlay="x.mp4")


def test_run_says_which_artefact_and_precision_runs_and_what_the_model_knows(brightness_model, tmp_path):
    video = grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 10)])
    r = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified")
    assert r.returncode == 0, r.stderr
    assert "3 classes: dark, mid, bright" in r.stderr and "running fp32 model.onnx on onnxruntime-cpu" in r.stderr, r.stderr


def test_a_folder_source_reads_gifs(brightness_model, tmp_path):
    folder = tmp_path / "clips"
    grey_video(folder / "a.avi", [(LEVELS["dark"], 12)])
    gif = shared_clips("ucf101") / "v_CricketShot_g04_c01_rgb.gif"
    (folder / gif.name).write_bytes(gif.read_bytes())
    r = cli("run", str(folder), "--model", str(brightness_model), "--allow-unverified", "--out", str(tmp_path / "res"), "-q")
    assert r.returncode == 0, r.stderr
    rows = {json.loads(l)["output"]: json.loads(l) for l in (tmp_path / "res" / "sources.jsonl").read_text().splitlines()}
    assert set(rows) == {"a", gif.stem} and rows[gif.stem]["frames"] > 10


def test_a_bug_in_the_reader_thread_is_raised_not_reported_as_a_bad_source(brightness_model, tmp_path, monkeypatch):
    """Only decoder and file errors end a source with a reason; any other exception in the
    reader thread is a bug and reaches the caller as itself (the fuzzer could never see one)."""
    from prp_deploy.data.preprocess import Preprocess

    video = grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 30)])

    def broken(self, frame):
        raise ZeroDivisionError("a bug in preprocessing")

    monkeypatch.setattr(Preprocess, "frame", broken)
    rec = Recognizer(brightness_model, allow_unverified=True)
    with pytest.raises(ZeroDivisionError, match="a bug in preprocessing"):
        list(rec.stream(video))
    assert FrameReader.process_open.now == 0
