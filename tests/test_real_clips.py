"""Every real clip in ../shared/data/clips decodes and gives evaluation clips through the one preprocessing."""

import numpy as np
import pytest

from prp_deploy.data.clips import EvalClips
from prp_deploy.data.datasets import Video
from prp_deploy.data.preprocess import Preprocess
from prp_deploy.data.video import probe
from tests.conftest import shared_clips


@pytest.mark.parametrize("sub", ["ucf101", "hmdb51"])
def test_real_clips_decode_and_give_eval_clips(sub):
    folder = shared_clips(sub)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".avi", ".mp4", ".gif"))
    assert len(files) >= 10
    spec = Preprocess(short_side=64, crop=48, frames=16)
    ds = EvalClips([Video(p, 0) for p in files], spec, num_clips=2)
    for i, path in enumerate(files):
        info = probe(path)
        assert info.frame_count > 16, path.name
        item = ds[i]
        assert item is not None and item["clips"].shape == (2, 3, 16, 48, 48)
        assert np.isfinite(item["clips"]).all() and item["clips"].std() > 0.01  # a real picture, not a blank
