"""How far an INT8 graph is from FP32, on evidence that moves before top-1 does, and what a
verdict on N videos can and cannot tell.

Two uses:
- choosing a quantisation (`held_back_stats`): on videos the classifier was never fitted on
  (the run's validation and unlabelled training videos), clip-level top-1 agreement with
  FP32, the KL of the logits, the true class's margin and how much INT8 moves it, the
  videos lost and gained, and the drop that the margins predict: each video's FP32 margin
  against the spread of the margin changes seen over all held-back videos. A model whose
  quantisation noise is close to its margins shows it here before a test video flips.
- stating a verdict (`paired_flips`): videos lost and gained, an exact McNemar p, a one-sided
  95 % upper bound on the flip rate, and how many videos the 1-point rule is worth.

Plain numpy and math: no quantisation engine, no backend.
"""

from __future__ import annotations

import math

import numpy as np


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def clip_kl(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """KL(softmax(ref) ‖ softmax(got)) per row: how much of the FP32 distribution INT8 keeps."""
    lr, lg = _log_softmax(np.asarray(ref, np.float64)), _log_softmax(np.asarray(got, np.float64))
    return (np.exp(lr) * (lr - lg)).sum(-1)


def true_margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The true class's logit minus the best other class's: > 0 where the prediction is right."""
    rows = np.arange(len(labels))
    other = np.array(logits, np.float64)
    true = other[rows, labels].copy()
    other[rows, labels] = -np.inf
    return true - other.max(1)


def predicted_net_loss(m_ref: np.ndarray, m_got: np.ndarray, scale: np.ndarray) -> float:
    """Videos expected lost minus gained if each video's margin moved as the margins of the
    held-back videos did: every video's FP32 margin against every observed change, both in
    units of the video's own logit scale (`scale`, the spread of its FP32 logits: noise grows
    with the logits). Smooth where a count of flips is 0 or 1, and larger the closer the
    noise comes to the margins."""
    scale = np.maximum(np.asarray(scale, np.float64), 1e-6)
    z, c = m_ref / scale, (m_got - m_ref) / scale  # margins and changes, in logit-scale units
    moved = z[:, None] + c[None, :]
    lost = ((z[:, None] > 0) & (moved <= 0)).mean(1).sum()
    gained = ((z[:, None] <= 0) & (moved > 0)).mean(1).sum()
    return float(lost - gained)


def held_back_stats(ref: list[np.ndarray], got: list[np.ndarray], labels: np.ndarray) -> dict:
    """`ref`/`got`: per video, its clips' logits (K, classes) from FP32 and INT8; `labels` the
    videos' true classes. Video-level predictions average the clips' logits (the paper's
    protocol, as the test verdict)."""
    labels = np.asarray(labels)
    r_clips, g_clips = np.concatenate(ref), np.concatenate(got)
    v_ref = np.stack([r.mean(0) for r in ref])
    m_ref = true_margin(v_ref, labels)
    m_got = true_margin(np.stack([g.mean(0) for g in got]), labels)
    n = len(labels)
    lost, gained = int(((m_ref > 0) & (m_got <= 0)).sum()), int(((m_ref <= 0) & (m_got > 0)).sum())
    change = m_got - m_ref
    return {"videos": n, "clips": int(len(r_clips)),
            "clip_agreement": float((r_clips.argmax(1) == g_clips.argmax(1)).mean()),
            "mean_kl": float(clip_kl(r_clips, g_clips).mean()),
            "fp32_top1": 100.0 * float((m_ref > 0).mean()),
            "lost": lost, "gained": gained, "drop_points": 100.0 * (lost - gained) / n,
            "predicted_drop_points": 100.0 * predicted_net_loss(m_ref, m_got, v_ref.std(1)) / n,
            "margin_change_p5": float(np.percentile(change, 5)),
            "margins_within_noise": int((np.abs(m_ref) <= np.abs(change).max()).sum())}  # videos the worst change seen could flip


def held_back_passes(stats: dict, budget_points: float) -> bool:
    """A quantisation is chosen only if both the observed and the predicted drop on the
    held-back videos are within `budget_points` (half the test rule's: the test is other videos)."""
    return stats["drop_points"] <= budget_points and stats["predicted_drop_points"] <= budget_points


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
            for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen k times in n: the p at which
    seeing k or fewer has probability 1 − confidence."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: the binomial CDF falls as p rises
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _binom_cdf(k, n, mid) > 1 - confidence else (lo, mid)
    return hi


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p: under 'INT8 changes nothing', each discordant video is lost
    or gained with probability 1/2 (2 lost, 0 gained: p = 0.5)."""
    d = lost + gained
    if d == 0:
        return 1.0
    return min(1.0, 2.0 * _binom_cdf(min(lost, gained), d, 0.5))


def paired_flips(ref_right: np.ndarray, got_right: np.ndarray, max_drop_points: float) -> dict:
    """The test verdict's paired statistics over its videos (FP32 right/wrong, INT8 right/wrong)."""
    ref_right, got_right = np.asarray(ref_right, bool), np.asarray(got_right, bool)
    n = int(len(ref_right))
    lost, gained = int((ref_right & ~got_right).sum()), int((~ref_right & got_right).sum())
    videos_per_point = n / 100.0
    allowed = math.floor(max_drop_points * videos_per_point + 1e-9)  # net videos the rule lets go
    flips = lost + gained
    sentence = (f"{flips} of {n} videos flipped ({lost} lost, {gained} gained); 1 point = {videos_per_point:.2g} videos, "
                + (f"so on {n} videos the {max_drop_points:g}-point rule allows no net loss" if allowed == 0
                   else f"the {max_drop_points:g}-point rule allows a net loss of {allowed}")
                + f"; McNemar p = {mcnemar_exact(lost, gained):.2g}, flip rate ≤ {100 * upper_bound(flips, n):.2g} % (95 %)")
    return {"videos": n, "lost": lost, "gained": gained, "flips": flips, "net_loss_allowed": allowed,
            "mcnemar_p": mcnemar_exact(lost, gained), "flip_rate_upper95": upper_bound(flips, n), "sentence": sentence}
