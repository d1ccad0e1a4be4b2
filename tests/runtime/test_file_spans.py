"""`--start/--end` on files: a seek, windows that carry the file's own times and equal the whole
run's windows there; bad spans are usage errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from prp_deploy.errors import UsageError
from prp_deploy.runtime.api import Recognizer
from tests.av_videos import encode

VFR_MS = [i * 40 + (i % 4) * 9 + (i // 100) * 700 for i in range(400)]  # uneven steps, three jumps of 0.7 s


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("span") / "long.mp4", 400, size=(80, 60))  # 16 s, a keyframe every 12 frames


@pytest.fixture(scope="module")
def recognizer(exported):
    return Recognizer(exported)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True, timeout=300)


def test_a_span_gives_the_whole_runs_windows_at_those_times(recognizer, long_video):
    whole = {r["start_frame"]: r for r in recognizer.stream(long_video)}
    part = list(recognizer.stream(long_video, start=9.0, end=12.5))
    assert part and all(9.0 <= r["start_s"] and r["end_s"] < 12.5 for r in part)
    assert part[0]["start_s"] < 9.5  # it began at the start asked for, not at a keyframe or a window before
    for r in part:
        same = whole[r["start_frame"]]  # windows fall where the whole file's do
        assert (r["start_s"], r["end_s"], r["end_frame"]) == (same["start_s"], same["end_s"], same["end_frame"])
        assert np.allclose(r["probs"], same["probs"], atol=1e-4) and np.allclose(r["features"], same["features"], atol=1e-4)


def test_windows_carry_presentation_times_on_variable_frame_rate(recognizer, tmp_path):
    vfr = encode(tmp_path / "vfr.mp4", 400, size=(80, 60), times_ms=VFR_MS)
    records = list(recognizer.stream(vfr, start=5.0))
    first_at_or_after = next(i for i, t in enumerate(VFR_MS) if t >= 5000)
    assert records[0]["start_frame"] >= first_at_or_after
    for r in records:
        assert r["start_s"] == pytest.approx(VFR_MS[r["start_frame"]] / 1000, abs=1e-3)
        assert r["end_s"] == pytest.approx(VFR_MS[r["end_frame"] - 1] / 1000, abs=1e-3)  # its last frame's time


def test_the_command_line_takes_hh_mm_ss_and_writes_the_span(exported, long_video, tmp_path):
    out = tmp_path / "w.jsonl"
    r = cli("run", str(long_video), "--model", str(exported), "--out", str(out), "--start", "00:00:10", "--end", "0:13.5", "-q")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(10.0 <= x["start_s"] and x["end_s"] < 13.5 for x in records)


@pytest.mark.parametrize("args,pattern", [
    (["--start", "12", "--end", "12"], r"--start \(12 s\) must come before --end \(12 s\)"),
    (["--start", "40"], r"--start 40 s is past its end \(15\.96 s\)"),
    (["--start", "1:75"], "wants seconds or HH:MM:SS"),
])
def test_a_bad_span_is_a_one_line_usage_error(exported, long_video, args, pattern):
    r = cli("run", str(long_video), "--model", str(exported), *args)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert any(__import__("re").search(pattern, line) for line in lines[-2:]), r.stderr


def test_a_span_on_a_stream_is_a_usage_error(recognizer):
    with pytest.raises(UsageError, match="apply to video files"):
        list(recognizer.stream("rtsp://127.0.0.1:9/none", start=5))


def test_thumbnails_seek_to_their_span(long_video):
    from prp_deploy.data.video_file import VideoFile
    from prp_deploy.runtime.thumbnails import spread_frames

    frames = spread_frames(str(long_video), 3, 9.0, 12.0)
    with VideoFile(long_video) as video:
        want = video.read([225, 262, 300])  # 9.0 s, between, 12.0 s at 25 fps
    assert len(frames) == 3 and all(np.array_equal(a, b) for a, b in zip(frames, want))
