import numpy as np
import pytest

from prp_deploy.data.preprocess import Preprocess, resize_rgb, resized_size, to_input
from prp_deploy.errors import PRPError


@pytest.mark.parametrize(
    "size,expected",
    [((320, 240), (171, 128)), ((340, 256), (170, 128)), ((224, 224), (128, 128)), ((240, 320), (128, 171)), ((1920, 1080), (228, 128))],
)
def test_resize_rule_short_side_128_long_side_rounded(size, expected):
    assert resized_size(*size, 128) == expected


def test_resize_rgb_converts_bgr_and_resizes():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    out = resize_rgb(frame, 128)
    assert out.shape == (128, 171, 3)
    assert out[..., 2].min() == 255 and out[..., 0].max() == 0


def test_eval_clip_layout_range_and_normalisation():
    frames = np.random.default_rng(0).integers(0, 256, (16, 128, 171, 3), dtype=np.uint8)
    spec = Preprocess(crop=112)
    x = spec.clip(frames)
    assert x.shape == (3, 16, 112, 112) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    y0, x0 = (128 - 112) // 2, (171 - 112) // 2
    np.testing.assert_allclose(x[:, 3], frames[3, y0 : y0 + 112, x0 : x0 + 112].transpose(2, 0, 1) / 255, atol=1e-6)
    norm = to_input(frames[:, :112, :112], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    np.testing.assert_allclose(norm, (to_input(frames[:, :112, :112]) - 0.5) / 0.25, atol=1e-5)


def test_spec_round_trips_and_rejects_bad_values():
    spec = Preprocess(short_side=64, crop=48, frames=8, sample_rate=2, mean=(0.1, 0.2, 0.3), std=(1, 2, 3))
    d = spec.to_dict()
    assert d["channel_order"] == "RGB" and d["value_scale"] == [0.0, 1.0] and d["schema_version"] == 1
    assert Preprocess.from_dict(d) == spec
    with pytest.raises(PRPError, match="crop 200 is larger"):
        Preprocess(crop=200)
    with pytest.raises(PRPError, match="lacks the key 'crop'"):
        Preprocess.from_dict({"short_side": 128, "frames": 16})
    with pytest.raises(PRPError, match="unsupported preprocessing"):
        Preprocess.from_dict({**d, "channel_order": "BGR"})
