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

FP16_MIN_COSINE = 0.999
FP16_TIE_MARGIN = 0.05


@dataclass
class Check:
    artifact: str  # model.onnx | model_fp16.onnx | model.plan
    backend: str
    output: str  # logits | features
    inputs: str  # "real" clips (gating) or "random" tensors (reported apart)
    precision: str  # fp32 | fp16
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
        keys = ["max_abs", "mean_abs", "max_rel", "min_cosine", "top1_agree", "top5_overlap", "near_ties"]
        body = " ".join(f"{k}={s[k]:.3g}" if isinstance(s.get(k), float) else f"{k}={s[k]}" for k in keys if k in s)
        return f"{verdict} | {self.artifact:16s} {self.backend:17s} {self.output:8s} {self.inputs:6s} n={self.clips:<3d} {body}"


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    cos[(na == 0) & (nb == 0)] = 1.0  # two zero vectors agree
    return cos


def compare(ref: np.ndarray, out: np.ndarray, output: str, precision: str, atol: float, rtol: float, **meta) -> Check:
    """One output of one artefact against the reference on the same clips."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    check = Check(output=output, precision=precision, clips=int(ref.shape[0]) if ref.ndim else 0, **meta)
    if ref.size == 0 or ref.shape != out.shape:
        check.stats = {"error": "nothing compared" if ref.size == 0 else f"shape {out.shape} != reference {ref.shape}"}
        check.passed = False
        return check
    diff = np.abs(out - ref)
    rel = diff / np.maximum(np.abs(ref), 1e-12)
    stats = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "max_rel": float(rel.max()),
             "median_abs": float(np.median(diff)), "finite": bool(np.isfinite(out).all())}
    if output == "features":
        cos = _cosine_rows(ref, out)
        stats["min_cosine"] = float(cos.min())
        stats["mean_cosine"] = float(cos.mean())
    if output == "logits":
        top_ref, top_out = np.argsort(-ref, 1), np.argsort(-out, 1)
        k = min(5, ref.shape[1])
        stats["top1_agree"] = float((top_ref[:, 0] == top_out[:, 0]).mean())
        stats["top5_overlap"] = float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(top_ref, top_out)]))
        srt = np.sort(ref, 1)
        margin = srt[:, -1] - srt[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
        clear = margin > FP16_TIE_MARGIN
        stats["near_ties"] = int((~clear).sum())
        stats["top1_agree_clear"] = float((top_ref[clear, 0] == top_out[clear, 0]).mean()) if clear.any() else 1.0
    if precision == "fp32":
        failing = (diff > atol) & (diff > rtol * np.abs(ref))
        stats["failing_elements"] = int(failing.sum())
        check.thresholds = {"atol": atol, "rtol": rtol, "rule": "an element fails if it exceeds both atol and rtol*|ref|"}
        check.passed = bool(stats["finite"] and not failing.any())
    else:
        check.thresholds = {"min_cosine": FP16_MIN_COSINE, "tie_margin": FP16_TIE_MARGIN,
                            "rule": "features: cosine >= min_cosine per clip; logits: identical top-1 where the FP32 margin > tie_margin"}
        if output == "features":
            check.passed = bool(stats["finite"] and stats["min_cosine"] >= FP16_MIN_COSINE)
        else:
            check.passed = bool(stats["finite"] and stats["top1_agree_clear"] == 1.0)
    check.stats = stats
    return check


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

    def to_dict(self) -> dict:
        return {"schema_version": 1, "passed": self.passed, "clips": self.clips, "videos": self.videos,
                "artifacts": {a: self.artifact_passed(a) for a in dict.fromkeys(c.artifact for c in self.checks)},
                "checks": [c.to_dict() for c in self.checks]}

    def table(self) -> str:
        lines = [c.line() for c in self.checks]
        lines.append(("PASSED" if self.passed else "FAILED") + f" | parity over {self.clips} real clips from {len(self.videos)} videos")
        return "\n".join(lines)
