import numpy as np
import pytest

from prp_deploy.data.cache import FrameCache
from prp_deploy.data.clips import CachedFrames, DecodedFrames
from prp_deploy.data.video import probe
from prp_deploy.errors import VideoError
from tests.conftest import shared_clips


@pytest.mark.parametrize("fmt", ["jpeg", "raw"])
def test_cache_serves_the_decoded_frames(fmt, tmp_path):
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    cache = FrameCache(128, fmt, root=tmp_path)
    assert not cache.has(video)
    assert cache.write(video) == probe(video).frame_count == 87
    assert cache.has(video) and cache.num_frames(video) == 87
    idx = [80, 0, 40, 40]
    got = cache.read(video, idx)
    want = DecodedFrames(128).read(video, idx)
    assert got.shape == want.shape == (4, 128, 171, 3)
    if fmt == "raw":
        np.testing.assert_array_equal(got, want)
    else:  # lossy, but close: mean abs error of a few grey levels at quality 90
        assert np.abs(got.astype(int) - want).mean() < 3.0
    assert list(tmp_path.glob(".tmp-*")) == []  # atomic write left no temp file


def test_cache_falls_back_to_decoding_when_absent(make_video, tmp_path):
    path = make_video("v.avi", 20)
    source = CachedFrames(FrameCache(32, "jpeg", root=tmp_path / "c"))
    assert source.num_frames(path) == 20
    assert source.read(path, [3]).shape == (1, 32, 43, 3)


def test_corrupt_cache_entry_is_a_clear_error(make_video, tmp_path):
    path = make_video("v.avi", 20)
    cache = FrameCache(32, "jpeg", root=tmp_path / "c")
    cache.write(path)
    cache.path_for(path).write_bytes(b"garbage" * 10)
    with pytest.raises(VideoError, match="not a frame-cache file"):
        cache.read(path, [0])
    with pytest.raises(VideoError, match=r"frame 25 asked of a cached video of 20"):
        cache.write(path)
        cache.read(path, [25])


def test_cache_key_follows_file_identity(make_video, tmp_path):
    a, b = make_video("a.avi", 10), make_video("b.avi", 10)
    cache = FrameCache(32, "raw", root=tmp_path / "c")
    assert cache.path_for(a) != cache.path_for(b)


def _peak_rss_mb_of_write(video, fmt: str, root) -> float:
    """Peak memory of one process that imports the cache and writes `video` (a real process:
    ru_maxrss of this test process would carry whatever the suite used before)."""
    import subprocess
    import sys

    code = ("import resource, sys; from prp_deploy.data.cache import FrameCache;"
            "FrameCache(128, sys.argv[2], root=sys.argv[3]).write(sys.argv[1]);"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    r = subprocess.run([sys.executable, "-c", code, str(video), fmt, str(root)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip())


@pytest.mark.parametrize("fmt", ["jpeg", "raw"])
def test_cache_writes_stream_memory_does_not_grow_with_the_video(fmt, tmp_path):
    """10x the frames, the same peak: frames are encoded and written as they decode (the old
    write held every resized frame, 65 kB each here: +117 MB for the long video)."""
    from tests.conftest import index_frame, write_video

    short = write_video(tmp_path / "short.avi", (index_frame(i % 37, 160, 120) for i in range(200)))
    long = write_video(tmp_path / "long.avi", (index_frame(i % 37, 160, 120) for i in range(2000)))
    peak_short = _peak_rss_mb_of_write(short, fmt, tmp_path / "c")
    peak_long = _peak_rss_mb_of_write(long, fmt, tmp_path / "c")
    assert peak_long < peak_short + 25, (peak_short, peak_long)
    cache = FrameCache(128, fmt, root=tmp_path / "c")
    assert cache.num_frames(long) == 2000
    got = cache.read(long, [1999, 0, 1000])
    assert got.shape == (3, 128, 171, 3) and abs(float(got[0].mean()) - (1999 % 37) * 7) < 4  # the last frame is the last


def test_a_pack_of_the_first_layout_still_reads(tmp_path):
    """v1 packs (the index right after the header) in an existing cache stay usable."""
    import struct

    import cv2

    from prp_deploy.data import cache as cache_module

    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    cache = FrameCache(128, "jpeg", root=tmp_path)
    frames = DecodedFrames(128).read(video, range(5))
    blobs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype("<u8")
    h, w = frames.shape[1:3]
    path = cache.path_for(video)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<8sIIId", cache_module.MAGIC_V1, 5, h, w, 25.0) + offsets.tobytes() + b"".join(blobs))
    assert cache.num_frames(video) == 5
    assert np.abs(cache.read(video, [4, 1]).astype(int) - frames[[4, 1]]).mean() < 3.0
