"""Parity between a reference and a candidate backend, with every statistic and a verdict.

Imports no backend: it compares arrays. Comparing nothing is a failure, never a pass.

FP32 rule (Polygraphy's): an element fails only if it exceeds both atol and rtol·|ref|.
FP16 rule (what matters downstream): per clip, feature cosine ≥ 0.999; top-1 identical on
every clip whose FP32 top-1/top-2 logit margin exceeds 0.05 (near-ties are counted and
reported, not failed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

RULES = ("fp32", "fp16", "int8")
# No rule passes on nothing: a verdict needs at least this many judged clips (for top-1
# agreement, clips whose FP32 top-1/top-2 margin is clear). Below it the check fails, saying so.
MIN_JUDGED = 8
FP16_MIN_COSINE = 0.999
FP16_TIE_MARGIN = 0.05
# INT8 rounding moves every activation by up to half a step: cosines of 0.995-0.9995 and a
# few flipped near-ties are normal (docs/results.md); a drop past these is a broken model.
INT8_RULES = {"mean_cosine": 0.99, "p5_cosine": 0.98, "top1_agree_clear": 0.98, "tie_margin": 0.5, "min_spread_ratio": 0.1,
              "max_accuracy_drop": 1.0}


@dataclass
class Check:
    artifact: str  # model.onnx | model_fp16.onnx | model.plan
    backend: str
    output: str  # logits | features
    inputs: str  # "real" clips (gating) or "random" tensors (reported apart)
    precision: str  # the rule: fp32 | fp16 | int8
    clips: int
    stats: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    passed: bool = False
    gating: bool = True  # random-input checks are reported, not gating

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        verdict = "PASSED" if self.passed else ("FAILED" if self.gating else "INFO  ")
        s = self.stats
        keys = ["max_abs", "mean_abs", "max_rel", "min_cosine", "p5_cosine", "top1_agree", "top1_agree_clear", "near_ties", "accuracy_drop"]
        body = " ".join(f"{k}={s[k]:.3g}" if isinstance(s.get(k), float) else f"{k}={s[k]}" for k in keys if k in s)
        if "error" in s:
            body += f" ({s['error']})"
        if "sentence" in s:  # a video-level verdict: what its sample size can tell
            body += f" ({s['sentence']})"
        return f"{verdict} | {self.artifact:16s} {self.backend:17s} {self.output:8s} {self.inputs:6s} n={self.clips:<3d} {body}"


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    cos[(na == 0) & (nb == 0)] = 1.0  # two zero vectors agree
    return cos


def compare(ref: np.ndarray, out: np.ndarray, output: str, precision: str, atol: float, rtol: float, min_judged: int = MIN_JUDGED,
            **meta) -> Check:
    """One output of one artefact against the reference on the same clips, by the rule
    `precision` names. Fails, saying why, when fewer than `min_judged` clips (with a clear
    margin, for top-1 agreement) were judged, or when the reference predicts one class on
    every clip: then agreement compares nothing."""
    if precision not in RULES:
        raise ValueError(f"unknown parity rule {precision!r}; expected one of {', '.join(RULES)}")
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    check = Check(output=output, precision=precision, clips=int(ref.shape[0]) if ref.ndim else 0, **meta)
    if ref.size == 0 or ref.shape != out.shape:
        check.stats = {"error": "nothing compared" if ref.size == 0 else f"shape {out.shape} != reference {ref.shape}"}
        check.passed = False
        return check
    diff = np.abs(out - ref)
    rel = diff / np.maximum(np.abs(ref), 1e-12)
    # Relative error only where the reference is not near zero (else 1e-6 / 1e-14 reads as 1e8).
    meaningful = np.abs(ref) > max(atol, 1e-3 * float(np.abs(ref).max()) if ref.size else 0.0)
    stats = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
             "max_rel": float(rel[meaningful].max()) if meaningful.any() else 0.0,
             "median_abs": float(np.median(diff)), "finite": bool(np.isfinite(out).all())}
    if output == "features":
        stats.update(_feature_stats(ref, out))
    if output == "logits":
        stats.update(_logit_stats(ref, out, precision))
    if precision == "fp32":
        failing = (diff > atol) & (diff > rtol * np.abs(ref))
        stats["failing_elements"] = int(failing.sum())
    check.thresholds, check.passed = _rule(precision, output, stats, atol, rtol)
    check.thresholds["min_judged"] = min_judged
    error = _too_little_judged(stats, output, precision, check.clips, min_judged, ref.shape[1] if ref.ndim > 1 else 1)
    if error:
        stats["error"], check.passed = error, False
    check.stats = stats
    return check


def _feature_stats(ref: np.ndarray, out: np.ndarray) -> dict:
    cos = _cosine_rows(ref, out)
    return {"min_cosine": float(cos.min()), "p5_cosine": float(np.percentile(cos, 5)), "mean_cosine": float(cos.mean()),
            "spread_ratio": float(out.std(0).mean() / max(ref.std(0).mean(), 1e-30)) if len(ref) > 1 else 1.0,
            "cosines": [round(float(c), 7) for c in cos]}  # per clip: the report's histogram


def _logit_stats(ref: np.ndarray, out: np.ndarray, precision: str) -> dict:
    top_ref, top_out = np.argsort(-ref, 1), np.argsort(-out, 1)
    k = min(5, ref.shape[1])
    srt = np.sort(ref, 1)
    margin = srt[:, -1] - srt[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    clear = margin > (INT8_RULES["tie_margin"] if precision == "int8" else FP16_TIE_MARGIN)
    return {"top1_agree": float((top_ref[:, 0] == top_out[:, 0]).mean()),
            "top5_overlap": float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(top_ref, top_out)])),
            "classes_predicted": int(len(set(top_out[:, 0].tolist()))), "classes_reference": int(len(set(top_ref[:, 0].tolist()))),
            "near_ties": int((~clear).sum()), "judged": int(clear.sum()),
            "top1_agree_clear": float((top_ref[clear, 0] == top_out[clear, 0]).mean()) if clear.any() else 0.0}


def _rule(precision: str, output: str, stats: dict, atol: float, rtol: float) -> tuple[dict, bool]:
    """(thresholds, passed): the rule `precision` names, applied to the statistics."""
    if precision == "fp32":
        return ({"atol": atol, "rtol": rtol, "rule": "an element fails if it exceeds both atol and rtol*|ref|"},
                bool(stats["finite"] and stats["failing_elements"] == 0))
    if precision == "int8":
        thresholds = {**INT8_RULES, "rule": "features: mean and 5th-percentile cosine, spread kept; logits: top-1 agreement "
                                            "where the FP32 margin > tie_margin, more than one class where FP32 has more"}
        if output == "features":
            return thresholds, bool(stats["finite"] and stats["mean_cosine"] >= INT8_RULES["mean_cosine"]
                                    and stats["p5_cosine"] >= INT8_RULES["p5_cosine"] and stats["spread_ratio"] >= INT8_RULES["min_spread_ratio"])
        collapsed = stats["classes_predicted"] == 1 and stats["classes_reference"] > 1
        return thresholds, bool(stats["finite"] and not collapsed and stats["top1_agree_clear"] >= INT8_RULES["top1_agree_clear"])
    thresholds = {"min_cosine": FP16_MIN_COSINE, "tie_margin": FP16_TIE_MARGIN,
                  "rule": "features: cosine >= min_cosine per clip; logits: identical top-1 where the FP32 margin > tie_margin"}
    if output == "features":
        return thresholds, bool(stats["finite"] and stats["min_cosine"] >= FP16_MIN_COSINE)
    return thresholds, bool(stats["finite"] and stats["top1_agree_clear"] == 1.0)


def _too_little_judged(stats: dict, output: str, precision: str, clips: int, min_judged: int, classes: int) -> str | None:
    """Why the check cannot judge (too few clips, or a reference that predicts one class), or None."""
    by_top1 = output == "logits" and precision != "fp32"  # FP32's rule is elementwise: every clip counts
    judged = stats["judged"] if by_top1 else clips
    if judged < min_judged:
        what = "clips have a clear FP32 margin" if by_top1 else "clips were compared"
        return f"only {judged} of {clips} {what}; at least {min_judged} are needed to judge (use more --parity-clips)"
    if min_judged > 0 and output == "logits" and stats["classes_reference"] == 1 and classes > 1:
        return (f"the FP32 reference predicts one class on all {clips} clips: a degenerate model (or clips of one "
                "class), so agreement compares nothing")
    return None


def judge_int8(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict:
    """The INT8 rules over every output with half their error budget (cosines and agreement
    twice as close to 1), for choosing a quantisation remedy on held-back training clips: the
    final parity is judged on other clips, so a graph that only just passes here may not there."""
    checks = [compare(reference[o], candidate[o], o, "int8", 0.0, 0.0, artifact="", backend="", inputs="held-back") for o in reference]
    stats = {f"{c.output}_{k}": v for c in checks for k, v in c.stats.items() if k in ("mean_cosine", "p5_cosine", "top1_agree_clear", "spread_ratio")}
    strict = {k: 1 - (1 - INT8_RULES[k]) / 2 for k in ("mean_cosine", "p5_cosine", "top1_agree_clear")}
    passed = all(c.passed for c in checks) and all(stats.get(f"{o}_{k}", 1.0) >= t for k, t in strict.items() for o in reference)
    return {"passed": passed, "stats": stats, "thresholds": strict}


@dataclass
class ParityReport:
    checks: list[Check] = field(default_factory=list)
    clips: int = 0
    videos: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        gating = [c for c in self.checks if c.gating]
        return bool(gating) and self.clips > 0 and all(c.passed for c in gating)

    def artifact_passed(self, artifact: str) -> bool:
        gating = [c for c in self.checks if c.gating and c.artifact == artifact]
        return bool(gating) and all(c.passed for c in gating)

    def failed(self) -> list[str]:
        """The artefacts a gating check failed (one judged only for information is not among them)."""
        return list(dict.fromkeys(c.artifact for c in self.checks if c.gating and not c.passed))

    def to_dict(self) -> dict:
        return {"schema_version": 1, "passed": self.passed, "clips": self.clips, "videos": self.videos,
                "artifacts": {a: self.artifact_passed(a) for a in dict.fromkeys(c.artifact for c in self.checks)},
                "checks": [c.to_dict() for c in self.checks]}

    def table(self) -> str:
        lines = [c.line() for c in self.checks]
        lines.append(("PASSED" if self.passed else "FAILED") + f" | parity over {self.clips} real clips from {len(self.videos)} videos")
        return "\n".join(lines)
