"""Evaluation on toy inputs whose answers are known."""

import numpy as np
import pytest

from prp_deploy.training.evaluate import majority_chance, retrieval_chance, retrieval_hits, topk_accuracy


def test_topk_accuracy_known_answer():
    logits = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 1])
    acc = topk_accuracy(logits, labels, ks=(1, 2, 5))
    assert acc["top1"] == pytest.approx(100 / 3)
    assert acc["top2"] == pytest.approx(100.0)
    assert acc["top5"] == 100.0  # k above the class count means every class


def test_retrieval_known_answer():
    gallery = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    g_labels = np.array([0, 0, 1, 1])
    query = np.array([[1, 0.05], [0.2, 1], [1, 0.01]], np.float32)
    q_labels = np.array([0, 1, 1])  # the third query's nearest are class 0: a miss at 1 and 2, a hit at 3
    hits = retrieval_hits(query, q_labels, gallery, g_labels, ks=(1, 2, 3, 50))
    assert hits["top1"] == pytest.approx(200 / 3)
    assert hits["top2"] == pytest.approx(200 / 3)
    assert hits["top3"] == 100.0 and hits["top50"] == 100.0


def test_retrieval_is_scale_invariant_cosine():
    g = np.array([[1, 0], [0, 1]], np.float32)
    q = np.array([[100, 1]], np.float32)
    assert retrieval_hits(q, np.array([0]), g * 7, np.array([0, 1]), ks=(1,))["top1"] == 100.0


def test_chance_levels_follow_the_observed_labels():
    assert majority_chance(np.array([0, 1, 2, 3])) == 25.0
    assert majority_chance(np.array([0, 0, 0, 1]), 4) == 75.0  # unbalanced: a constant guess scores 75 %
    q, g = np.array([0, 1]), np.array([0, 0, 1, 1, 1, 1])
    ch = retrieval_chance(q, g, ks=(1, 2, 50))
    # class 0: 2 of 6 match → hit@1 1/3, hit@2 1 − C(4,2)/C(6,2) = 9/15; class 1: 4 of 6 → 2/3, 1 − C(2,2)/C(6,2) = 14/15
    assert ch["top1"] == pytest.approx(100 * (1 / 3 + 2 / 3) / 2)
    assert ch["top2"] == pytest.approx(100 * (9 / 15 + 14 / 15) / 2)
    assert ch["top50"] == pytest.approx(100.0)  # k past the gallery's size: every video is seen
    # Monte Carlo agrees with the closed form
    rng = np.random.default_rng(0)
    sims = [np.isin(c, rng.permutation(g)[:2]) for c in q for _ in range(4000)]
    assert 100 * np.mean(sims) == pytest.approx(ch["top2"], abs=2.0)
