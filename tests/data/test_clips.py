import numpy as np
import pytest

from prp_deploy.data.clips import DecodedFrames, EvalClips, PretrainClips, TrainClips
from prp_deploy.data.datasets import Video
from prp_deploy.data.loader import SkipCounter, collate_skipping
from prp_deploy.data.preprocess import Preprocess
from prp_deploy.errors import PRPError


@pytest.fixture
def videos(make_video):
    return [Video(make_video(f"v{i}.avi", n, 80, 60), i % 2) for i, n in enumerate([40, 70, 20, 140])]


def test_pretrain_item_shapes_and_labels(videos):
    ds = PretrainClips(videos, DecodedFrames(48), rates=(1, 2, 4, 8), clip_len=16, crop=32, rec_rate=2, seed=0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["clip"].shape == (3, 16, 32, 32) and item["clip"].dtype == np.float32
        assert item["target"].shape == (3, 32, 32, 32) and item["target_real"].shape == (32,)
        assert item["motion"].shape == (1, 32, 32, 32)
        assert 0 <= item["rate_label"] < 4
    # 20 frames: only s = 1 fits (17 frames with r = 2); other draws are resampled to it and counted.
    draws = []
    for e in range(12):
        ds.set_epoch(e)
        draws.append((ds[2]["rate_label"], ds[2]["adjusted"]))
    assert {label for label, _ in draws} == {0}
    assert {adjusted for _, adjusted in draws} == {0, 1}


def test_pretrain_items_depend_on_seed_epoch_index_only(videos):
    a = PretrainClips(videos, DecodedFrames(48), clip_len=8, crop=32, seed=5)
    b = PretrainClips(list(videos), DecodedFrames(48), clip_len=8, crop=32, seed=5)
    np.testing.assert_array_equal(a[1]["clip"], b[1]["clip"])
    labels0 = [a[3]["rate_label"] for _ in range(3)]
    assert len(set(labels0)) == 1
    draws = set()
    for e in range(8):
        a.set_epoch(e)
        draws.add((a[3]["rate_label"], float(a[3]["clip"].sum())))
    assert len(draws) > 1  # a new epoch draws new rates and crops


def test_dp_only_items_have_no_target(videos):
    item = PretrainClips(videos, DecodedFrames(48), clip_len=8, crop=32, rec_rate=None)[0]
    assert set(item) == {"clip", "rate_label", "adjusted"}


def test_eval_clips_ten_per_video_padded_for_short_ones(videos):
    spec = Preprocess(short_side=48, crop=32, frames=16)
    ds = EvalClips(videos, spec)
    item = ds[2]  # 20 frames
    assert item["clips"].shape == (10, 3, 16, 32, 32)
    assert item["padded"] == 0  # 20 ≥ 16 frames: no padding needed
    short = EvalClips([Video(videos[2].path, 0)], Preprocess(short_side=48, crop=32, frames=32))[0]
    assert short["padded"] == 10 * 12
    np.testing.assert_array_equal(short["clips"][0, :, -1], short["clips"][0, :, 19])  # repeats the last frame


def test_train_clips_random_crop(videos):
    ds = TrainClips(videos, DecodedFrames(48), Preprocess(short_side=48, crop=32, frames=8, sample_rate=2))
    assert ds[0]["clip"].shape == (3, 8, 32, 32) and ds[0]["label"] == 0


def test_unreadable_video_is_skipped_and_counted(videos, tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"nope" * 50)
    ds = PretrainClips(videos + [Video(bad, 0)], DecodedFrames(48), clip_len=8, crop=32)
    assert ds[len(videos)] is None
    batch, skipped = collate_skipping([ds[0], ds[len(videos)], ds[1]])
    assert skipped == 1 and batch["clip"].shape == (2, 3, 8, 32, 32)
    counter = SkipCounter(max_fraction=0.2)
    counter.add(10, 1)
    counter.check()
    counter.add(2, 2)
    with pytest.raises(PRPError, match="3 of 12 videos could not be read"):
        counter.check()
