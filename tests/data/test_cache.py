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
