import os

import numpy as np
import pytest

from prp_deploy.data.video import FrameCountCache, iter_frames, probe, read_frames
from prp_deploy.errors import VideoError
from tests.conftest import decoded_index, shared_clips

# Decoded frame counts, from ../shared/data/clips/SOURCES.md (OpenCV decoding to the end).
UCF_FRAMES = {
    "v_SoccerJuggling_g23_c01.avi": 240,
    "v_ApplyEyeMakeup_g01_c01.avi": 164,
    "v_BaseballPitch_g03_c01.avi": 87,
    "v_Basketball_g01_c02.mp4": 180,  # raw MPEG-4 stream: the container claims a negative count
    "v_CliffDiving_g03_c01.mp4": 92,
    "v_CricketShot_g04_c01_rgb.gif": 79,
}


@pytest.mark.parametrize("name,frames", sorted(UCF_FRAMES.items()))
def test_probe_counts_decoded_frames_of_real_clips(name, frames, tmp_path):
    info = probe(shared_clips("ucf101") / name, counts=FrameCountCache(tmp_path / "counts.sqlite"))
    assert info.frame_count == frames
    expected_fps = 29.97 if name.startswith(("v_Soccer", "v_Baseball")) else 25.0
    assert info.fps == pytest.approx(expected_fps, abs=0.01)


def test_container_count_lies_and_probe_does_not(tmp_path):
    info = probe(shared_clips("ucf101") / "v_Basketball_g01_c02.mp4", counts=False)
    assert info.container_frame_count != info.frame_count
    assert info.frame_count == 180


def test_read_frames_any_order_with_repeats(make_video):
    path = make_video("v.avi", 30)
    frames = read_frames(path, [5, 0, 29, 5, 12])
    assert frames.shape == (5, 48, 64, 3)
    assert [decoded_index(f) for f in frames] == [5, 0, 29, 5, 12]


def test_read_frames_matches_sequential_decode_on_real_clip():
    path = shared_clips("ucf101") / "v_Basketball_g01_c02.mp4"  # no seek index: the case seeking gets wrong
    every = list(iter_frames(path))
    picked = read_frames(path, [150, 3, 77])
    for k, i in enumerate([150, 3, 77]):
        np.testing.assert_array_equal(picked[k], every[i])


def test_read_past_end_is_a_video_error(make_video):
    path = make_video("short.avi", 10)
    with pytest.raises(VideoError, match="frame 10 was needed"):
        read_frames(path, [3, 10])


def test_missing_and_non_video_files(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "absent.avi", counts=False)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="cannot open as a video"):
        probe(junk, counts=False)
    with pytest.raises(VideoError, match="folder"):
        probe(tmp_path, counts=False)


def test_truncated_video_counts_what_decodes(make_video, tmp_path):
    path = make_video("full.avi", 40)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    info = probe(cut, counts=False)
    assert 0 < info.frame_count < 40


def test_frame_count_cache_hits_and_invalidates_on_change(make_video, tmp_path):
    cache = FrameCountCache(tmp_path / "counts.sqlite")
    path = make_video("v.avi", 12)
    assert probe(path, counts=cache).frame_count == 12
    assert FrameCountCache(tmp_path / "counts.sqlite").get(str(path))["frame_count"] == 12
    make_video("v.avi", 20)  # same path, new content → new size and mtime
    os.utime(path, ns=(1, 1))
    assert probe(path, counts=cache).frame_count == 20


def _write_counts(args):
    db, videos, worker = args
    from prp_deploy.data.video import FrameCountCache, VideoInfo

    cache = FrameCountCache(db)
    for i, v in enumerate(videos):
        cache.put(v, VideoInfo(v, 25.0, 64, 48, 100 * worker + i, -1))


def test_eight_concurrent_writers_lose_no_frame_count(tmp_path):
    """`data prepare` workers write counts at once: every entry must survive (the JSON file lost them)."""
    import multiprocessing

    files = []
    for w in range(8):
        for i in range(25):
            f = tmp_path / "videos" / f"w{w}-{i}.avi"
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(b"x" * (w + 1))
            files.append(str(f))
    db = tmp_path / "counts.sqlite"
    jobs = [(db, files[w * 25 : (w + 1) * 25], w) for w in range(8)]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_write_counts, jobs)
    fresh = FrameCountCache(db)
    assert [fresh.get(f)["frame_count"] for f in files] == [100 * w + i for w in range(8) for i in range(25)]
