import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prp_deploy.data.sampling import (
    choose_rate, clip_indices, input_and_target, motion_attention, motion_pool_geometry, padded_range, span_length,
    target_positions, eval_clip_starts,
)


def test_dilated_input_takes_every_s_th_frame():
    span = np.arange(16 * 4)[:, None, None, None].astype(np.uint8) * np.ones((1, 2, 2, 3), np.uint8)
    clip, _, _ = input_and_target(span, 16, 4, None)
    assert clip[:, 0, 0, 0].tolist() == list(range(0, 64, 4))


@pytest.mark.parametrize("s", [1, 2, 4, 8])
@pytest.mark.parametrize("r", [1, 2, 4])
def test_target_is_the_r_times_slow_down(s, r):
    T = 16
    lo, hi, w, real = target_positions(T, s, r)
    assert len(lo) == T * r
    pos = lo + w
    np.testing.assert_allclose(pos, np.arange(T * r) * s / r)  # frame j of the target sits at j·s/r
    np.testing.assert_allclose(pos[::r], np.arange(T) * s)  # every r-th target frame is an input frame
    assert real.all() == (r <= s)
    if r > s:
        assert real.sum() == T * s  # only the frames that exist are real
    span_len = span_length(T, s, r)
    assert hi.max() <= span_len - 1
    # Build the target from frames whose value is their index: interpolation is linear in time.
    span = (np.arange(span_len)[:, None, None, None] * np.ones((1, 2, 2, 3))).astype(np.uint8)
    _, target, real2 = input_and_target(span, T, s, r)
    assert target.shape == (3, T * r, 2, 2)
    np.testing.assert_allclose(target[0, :, 0, 0] * 255, pos, atol=1e-3)
    np.testing.assert_array_equal(real, real2)


def test_choose_rate_never_exceeds_the_video_and_counts_adjustments():
    rng = np.random.default_rng(0)
    rates = (1, 2, 4, 8)
    seen = set()
    for _ in range(400):
        c = choose_rate(70, rates, 16, 2, rng)  # 70 frames: s = 8 (128) never fits, s = 4 (64) does
        assert c.start + c.span <= 70 and c.rate != 8
        assert rates[c.label] == c.rate
        seen.add(c.adjusted)
    assert seen == {None, "resampled"}
    padded = choose_rate(10, rates, 16, 2, rng)  # nothing fits: pad by repeating the last frame
    assert padded.adjusted == "padded" and padded.start == 0
    assert padded_range(0, padded.span, 10)[-1] == 9
    c = choose_rate(70, rates, 16, 2, np.random.default_rng(1), short_videos="pad")
    assert c.adjusted in (None, "padded")


def test_rate_labels_are_uniform_on_long_videos():
    rng = np.random.default_rng(0)
    labels = [choose_rate(1000, (1, 2, 4, 8), 16, None, rng).label for _ in range(4000)]
    counts = np.bincount(labels, minlength=4)
    assert counts.min() > 900


def test_eval_clip_starts_centred_and_padded():
    starts = eval_clip_starts(100, 16, 10)
    assert len(starts) == 10 and starts[0] == 0 and starts[-1] == 84
    assert starts == sorted(starts)
    assert eval_clip_starts(12, 16, 10) == [0] * 10
    assert eval_clip_starts(100, 16, 1) == [42]  # one clip is the centred one (linspace(a, b, 1) would give the first)
    assert eval_clip_starts(101, 16, 1) == [43]
    idx, padded = clip_indices(0, 16, 1, 12)
    assert padded == 4 and idx[-5:].tolist() == [11] * 5
    idx, padded = clip_indices(3, 4, 2, 100)
    assert idx.tolist() == [3, 5, 7, 9] and padded == 0


def torch_motion_attention(span: np.ndarray, T: int, s: int, out_frames: int) -> np.ndarray:
    """The paper's formula written directly in torch, as the reference for the numpy version."""
    r = torch.from_numpy(span[: T * s]).float().div(255)  # (T·s, H, W, 3)
    d = ((r[1:] - r[:-1]) ** 2).sum(-1)[None, None]  # (1, 1, T·s−1, H, W)
    (kt, k), (st_t, st) = motion_pool_geometry(T, span.shape[1])
    p = F.avg_pool3d(d, (kt, k, k), (st_t, st, st))
    a = (2.0 - 0.8) / (p.max() - p.min()) * (p - p.min()) + 0.8
    u = F.interpolate(a, size=(out_frames, span.shape[1], span.shape[2]), mode="trilinear", align_corners=False)
    return u[0, 0].numpy()


@pytest.mark.parametrize("s,crop,r", [(1, 112, 2), (2, 112, 1), (8, 112, 4), (4, 64, 2)])
def test_motion_attention_matches_torch_formula(s, crop, r):
    span = np.random.default_rng(s).integers(0, 256, (16 * s, crop, crop, 3), dtype=np.uint8)
    ours = motion_attention(span, 16, s, 16 * r)
    ref = torch_motion_attention(span, 16, s, 16 * r)
    assert ours.shape == (16 * r, crop, crop)
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    assert ours.min() >= 0.8 - 1e-5 and ours.max() <= 2.0 + 1e-5


def test_motion_attention_flat_clip_is_all_ones():
    span = np.full((32, 64, 64, 3), 77, np.uint8)
    m = motion_attention(span, 16, 2, 32)
    assert np.isfinite(m).all() and (m == 1.0).all()


def test_motion_attention_weighs_where_the_square_moves():
    T, s, c = 16, 2, 112
    span = np.zeros((T * s, c, c, 3), np.uint8)
    for t in range(T * s):  # a white square sliding right along the top-left quarter
        x = 5 + t
        span[t, 10:30, x : x + 20] = 255
    m = motion_attention(span, T, s, 32)
    moving = m[:, 10:30, 10:55].mean()
    still = m[:, 80:, 80:].mean()
    assert moving > 1.3 and still == pytest.approx(0.8, abs=0.05)
    assert np.unravel_index(m[0].argmax(), m[0].shape)[0] < 40


def test_motion_pool_geometry_is_the_papers_at_its_input_and_scales_with_the_crop():
    """M = U(A(P(D(R)))): the paper pools 15×28×28 with stride 16×7×7 at 16×112×112 (section 3.3)."""
    assert motion_pool_geometry(16, 112) == ((15, 28), (16, 7))
    assert motion_pool_geometry(8, 56) == ((7, 14), (8, 4))  # 3.5 rounds to 4
    assert motion_pool_geometry(8, 32) == ((7, 8), (8, 2))  # the tiny preset
    assert motion_pool_geometry(1, 8) == ((1, 2), (1, 1))  # never a zero kernel or stride
