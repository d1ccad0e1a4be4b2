import numpy as np
import pytest

from prp_deploy.data.datasets import ucf101_index
from prp_deploy.data.synth import SynthSpec, default_dataset, write_synthetic
from prp_deploy.data.video import probe, read_frames
from prp_deploy.errors import PRPError

SMALL = SynthSpec(classes=4, groups=3, clips_per_group=1, width=64, height=48, min_frames=20, max_frames=30)


def test_synthetic_dataset_is_a_real_ucf101_tree(tmp_path):
    root = write_synthetic(tmp_path / "synth", SMALL)
    for split in (1, 2, 3):
        index = ucf101_index(root, split)
        assert index.classes == ("SlideRight", "SlideLeft", "SlideUp", "SlideDown")
        assert len(index.train) == 8 and len(index.test) == 4
        assert {v.label for v in index.test} == {0, 1, 2, 3}
    for v in index.train:
        info = probe(v.path)
        assert 20 <= info.frame_count <= 30 and (info.width, info.height) == (64, 48)


def test_classes_differ_by_motion_not_appearance(tmp_path):
    """SlideRight and SlideLeft videos: the object's mean x moves in opposite directions."""
    root = write_synthetic(tmp_path / "s", SynthSpec(classes=2, groups=3, clips_per_group=2, width=96, height=64, min_frames=30, max_frames=30))
    index = ucf101_index(root, 1)
    for v in index.train:
        frames = read_frames(v.path, range(30)).astype(np.float32)  # (30, H, W, 3)
        background = np.median(frames, axis=0)  # the object moves, so the median is the scene without it
        fg = np.abs(frames - background).sum(-1) > 60  # (30, H, W) object mask
        xs = np.array([np.nonzero(m)[1].mean() for m in fg if m.any()])
        steps = np.diff(xs)
        steps = steps[np.abs(steps) < 96 / 4]  # drop the jump where the object wraps around the edge
        assert (np.median(steps) > 0) == (v.label == 0), v.path.name


def test_generation_is_seeded(tmp_path):
    a = write_synthetic(tmp_path / "a", SMALL)
    b = write_synthetic(tmp_path / "b", SMALL)
    fa = read_frames(a / "UCF-101/SlideUp/v_SlideUp_g02_c01.avi", [0, 10])
    fb = read_frames(b / "UCF-101/SlideUp/v_SlideUp_g02_c01.avi", [0, 10])
    np.testing.assert_array_equal(fa, fb)


def test_refuses_non_empty_output_and_bad_spec(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(PRPError, match="not empty"):
        write_synthetic(tmp_path / "x", SMALL)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    with pytest.raises(PRPError, match="multiple of 3"):
        SynthSpec(groups=4)


def test_default_dataset_generated_once_into_cache(_private_cache):
    root = default_dataset(SMALL)
    assert str(root).startswith(str(_private_cache))
    stamp = (root / "synth.json").stat().st_mtime_ns
    assert default_dataset(SMALL) == root and (root / "synth.json").stat().st_mtime_ns == stamp
