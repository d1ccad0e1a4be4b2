"""The INT8 judge's statistics, against values worked out by hand or by a second route."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prp_deploy.export.int8_judge import (clip_kl, held_back_passes, held_back_stats, mcnemar_exact, paired_flips,
                                          predicted_net_loss, true_margin, upper_bound)


def test_mcnemar_exact_matches_the_binomial_by_hand():
    assert mcnemar_exact(2, 0) == pytest.approx(0.5)  # the example: 2 lost, 0 gained is noise
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 1) == pytest.approx(2 * 5 / 16)  # P(X <= 1 | 4, 1/2) = 5/16
    assert mcnemar_exact(1, 3) == mcnemar_exact(3, 1)


def test_upper_bound_is_clopper_pearson():
    assert upper_bound(0, 60) == pytest.approx(1 - 0.05 ** (1 / 60), rel=1e-6)  # k = 0 has a closed form
    k, n = 2, 192
    p = upper_bound(k, n)
    at = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
    assert at == pytest.approx(0.05, abs=1e-6) and upper_bound(3, 192) > p > k / n
    assert upper_bound(5, 5) == 1.0 and upper_bound(0, 0) == 1.0


def test_paired_flips_states_the_sample_size_in_videos():
    ref = np.ones(192, bool)
    got = ref.copy()
    got[:2] = False
    f = paired_flips(ref, got, 1.0)
    assert (f["lost"], f["gained"], f["net_loss_allowed"]) == (2, 0, 1) and f["mcnemar_p"] == pytest.approx(0.5)
    assert f["sentence"].startswith("2 of 192 videos flipped (2 lost, 0 gained); 1 point = 1.9 videos") and "p = 0.5" in f["sentence"]
    small = paired_flips(np.ones(60, bool), np.ones(60, bool), 1.0)
    assert small["net_loss_allowed"] == 0 and "on 60 videos the 1-point rule allows no net loss" in small["sentence"]
    both = paired_flips(np.array([1, 1, 0, 0], bool), np.array([0, 1, 1, 0], bool), 1.0)
    assert (both["lost"], both["gained"], both["flips"]) == (1, 1, 2)


def test_kl_and_margin():
    ref = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    assert np.allclose(clip_kl(ref, ref), 0) and clip_kl(ref, ref[:, ::-1])[0] > 0
    p = np.exp(ref[0]) / np.exp(ref[0]).sum()
    q = np.exp(ref[0, ::-1]) / np.exp(ref[0, ::-1]).sum()
    assert clip_kl(ref[:1], ref[:1, ::-1])[0] == pytest.approx(float((p * np.log(p / q)).sum()))
    assert true_margin(ref[:1], np.array([0]))[0] == 2.0 and true_margin(ref[:1], np.array([2]))[0] == -3.0


def test_predicted_loss_sees_noise_coming_before_a_video_flips():
    """Margins of 1 and changes of up to ±0.9: nothing flipped, yet half the shifts seen would
    flip a thin-margin video, so the prediction is positive; with changes of ±0.01 it is 0."""
    rng = np.random.default_rng(0)
    m_ref = np.r_[np.full(10, 1.0), np.full(90, 10.0)]
    noisy = m_ref + rng.uniform(-0.9, 0.9, 100)
    assert ((m_ref > 0) & (noisy <= 0)).sum() == 0
    assert predicted_net_loss(m_ref, noisy, np.ones(100)) == 0  # changes under every margin: no flip possible
    wide = m_ref + np.r_[rng.uniform(-0.9, 0.9, 90), np.full(10, -3.0)]  # a tenth of the shifts exceed the thin margins
    assert predicted_net_loss(m_ref, wide, np.ones(100)) == pytest.approx(10 * 0.1, abs=1e-9)
    quiet = m_ref + rng.uniform(-0.01, 0.01, 100)
    assert predicted_net_loss(m_ref, quiet, np.ones(100)) == 0


def test_held_back_stats_and_verdict():
    rng = np.random.default_rng(1)
    labels = np.arange(30) % 3
    ref = [np.eye(3)[[l] * 4] * 5 + rng.normal(0, 0.1, (4, 3)) for l in labels]
    same = held_back_stats(ref, ref, labels)
    assert same["clip_agreement"] == 1.0 and same["lost"] == same["gained"] == 0 and held_back_passes(same, 0.5)
    broken = [r.copy() for r in ref]
    broken[0] = broken[0][:, ::-1].copy()  # one video's prediction moved to another class
    s = held_back_stats(ref, broken, labels)
    assert s["lost"] == 1 and s["drop_points"] == pytest.approx(100 / 30) and not held_back_passes(s, 0.5)
    assert s["clips"] == 120 and s["clip_agreement"] < 1.0
