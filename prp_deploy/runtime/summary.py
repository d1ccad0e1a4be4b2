"""What a run reports: a row per source (DIR/sources.jsonl, summary.json), the totals, and the
lines printed at the end."""

from __future__ import annotations

import resource
from pathlib import Path

from .artifacts import for_path
from .model_info import ModelInfo
from .scheduler import Source

MAX_TABLE_ROWS = 30


def source_row(src: Source, classes) -> dict:
    s = src.stats.summary(classes)
    video = s.pop("video_prediction")
    row = {"source": src.name, "output": src.stem, "status": src.status, **({"reason": src.error} if src.error else {}),
           "video_top1": video[0]["label"] if video else None, "video_score": video[0]["score"] if video else None, **s,
           "video_prediction": video, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           **({"stopped": True} if src.stopped else {})}
    return row


def totals(rows: list[dict], wall: float, skipped: int, max_open_decoders: int) -> dict:
    ran = [r for r in rows if not r.get("skipped")]
    frames, windows = sum(r["frames"] for r in ran), sum(r["windows"] for r in ran)
    return {"sources": len(rows), "ok": sum(r["status"] == "ok" for r in ran), "failed": sum(r["status"] == "failed" for r in rows),
            "skipped": skipped, "frames": frames, "windows": windows, "wall_s": wall, "windows_per_s": windows / max(wall, 1e-9),
            "frames_per_s": frames / max(wall, 1e-9), "max_open_decoders": max_open_decoders,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def format_summary(s: dict) -> str:
    """One source: its prediction, counts and speed. Several: a line each, then totals, the failures last."""
    rows, t = s["sources"], s["totals"]
    if len(rows) == 1 and t["sources"] == 1:
        r = rows[0]
        lines = []
        if r.get("video_prediction"):
            lines.append("video: " + ", ".join(f"{p['label']} {p['score']:.3f}" for p in r["video_prediction"]))
        if r.get("segments") is not None:
            lines.append(f"segments {r['segments']}")
        lines.append(f"frames {r['frames']}, windows {r['windows']}, dropped frames {r['dropped_frames']}, padded windows {r['padded_windows']}"
                     + (f"; outages {r['outages']} ({r['outage_s']:.1f} s without frames), reconnects {r['reconnects']} "
                        f"of {r['reconnect_attempts']} attempts" if r.get("outages") else ""))
        lines.append(f"throughput {r['frames_per_s']:.1f} frames/s, {r['windows_per_s']:.2f} windows/s; "
                     f"latency p50 {r['latency_p50_ms']:.1f} ms, p95 {r['latency_p95_ms']:.1f} ms; backend {s['backend']}")
        return "\n".join(lines)
    shown = [r for r in rows if not r.get("skipped")]
    if len(shown) > MAX_TABLE_ROWS:  # a folder of thousands: the failures only; every row is in summary.json
        shown = [r for r in shown if r["status"] != "ok"][:MAX_TABLE_ROWS]
    width = max([len(r["output"]) for r in shown] + [6])
    lines = [f"{'source':{width}s} {'frames':>7s} {'windows':>7s}  {'top-1':20s} status"] if shown else []
    for r in shown:
        top = f"{r['video_top1']} {r['video_score']:.2f}" if r["video_top1"] else "-"
        status = r["status"] if r["status"] == "ok" else f"failed: {r['reason']}"
        lines.append(f"{r['output']:{width}s} {r['frames']:7d} {r['windows']:7d}  {top:20s} {status}")
    lines.append(f"{t['frames']} frames, {t['windows']} windows in {t['wall_s']:.1f} s ({t['windows_per_s']:.1f} windows/s, "
                 f"{t['frames_per_s']:.0f} frames/s) on {s['backend']}; at most {t['max_open_decoders']} decoders open")
    if len(shown) < len([r for r in rows if not r.get("skipped")]):
        lines.append(f"(only the failed sources are listed: the {t['ok']} that succeeded are in summary.json)")
    lines.append(f"{t['sources']} sources: {t['ok']} ok, {t['failed']} failed" + (f", {t['skipped']} skipped (done before)" if t["skipped"] else ""))
    return "\n".join(lines)


def run_header(model_path: Path, info: ModelInfo, engine) -> str:
    """The model, what it knows, and which artefact at which precision runs (one line)."""
    path = getattr(engine, "path", None)
    what = f"{for_path(Path(path)).precision} {Path(path).name}" if path is not None else "the PyTorch checkpoint"
    classes = ", ".join(info.classes[:12]) + (f", ... ({len(info.classes)} in all)" if len(info.classes) > 12 else "")
    known = f"{len(info.classes)} classes: {classes}" if info.kind == "recognizer" else f"features of {info.feature_dim} dimensions"
    return f"model {model_path} ({info.kind}; {known}); running {what} on {engine.name}"


__all__ = ["format_summary", "run_header", "source_row", "totals"]
