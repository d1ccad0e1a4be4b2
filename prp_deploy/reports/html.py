"""report.html: one self-contained page per run (images inline, nothing fetched), written at the
end of `train`, refreshed by `export` and by `prp-deploy report RUN`.

It shows what the run's files say, never a number of its own: the config in brief, curves
(loss, accuracy with chance lines, learning rate), recognition (confusion matrix, per-class
accuracy), the pretext's playback-rate confusion, retrieval examples with their hits marked,
explain maps of a few test videos (when the export has model_explain.onnx that parity
passed), parity per artefact (verdict, cosine histogram, agreement, near-ties), INT8 facts
and the bench table when `bench --json RUN/export/bench.json` was run. Every number the page
prints sits in an element with `data-value="<file>:<key>"`, so a test can read it back from the DOM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import PRPError
from ..files import atomic_write
from ..runtime.thumbnails import image_data, spread_frames
from .plots import confusion_figure, curves_figure, data_uri, cosine_figure, lr_figure

REPORT_FILE = "report.html"
TEMPLATE = Path(__file__).with_name("report.html.j2")


def _load(path: Path) -> dict | list | None:
    if not path.exists():
        return None
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def _thumb(video: str, height: int = 56) -> str | None:
    """The middle frame of a video as a small JPEG data: URI (None when it cannot be read)."""
    frames = spread_frames(video, 3)  # first, middle, last
    return f"data:image/jpeg;base64,{image_data(frames[1], height)}" if frames else None


def _explain_images(export: Path, videos: list[str], say) -> list[dict]:
    """A grid per video (its middle window, two frames) from the export's verified explain graph."""
    from ..runtime.explain import explain_video, grid_image, open_explainer

    try:
        info, backend = open_explainer(export)
    except PRPError as e:
        say(f"report: no explain maps ({str(e).split(';')[0]})")
        return []
    out = []
    for v in videos:
        try:
            maps = explain_video(v, info, backend)
        except PRPError as e:
            say(f"report: {v}: no explain maps ({e})")
            continue
        grid = grid_image([maps[len(maps) // 2]])  # its middle window
        out.append({"video": Path(v).name, "image": f"data:image/png;base64,{image_data(grid, ext='.png')}"})
    return out


def _parity_rows(parity: dict) -> list[dict]:
    rows = []
    for name, passed in parity.get("artifacts", {}).items():
        checks = [c for c in parity["checks"] if c["artifact"] == name and c["inputs"] == "real"]
        cos = next((c["stats"].get("cosines") for c in checks if c["output"] == "features"), None)
        logits = next((c for c in checks if c["output"] == "logits"), None)
        feats = next((c for c in checks if c["output"] == "features"), None)
        rows.append({
            "file": name, "passed": passed, "precision": checks[0]["precision"] if checks else "",
            "min_cosine": feats["stats"].get("min_cosine") if feats else None,
            "agree": logits["stats"].get("top1_agree") if logits else None,
            "near_ties": logits["stats"].get("near_ties") if logits else None,
            "drop": next((c["stats"].get("accuracy_drop") for c in parity["checks"] if c["artifact"] == name and c["output"] == "video_top1"), None),
            "histogram": data_uri(cosine_figure(cos, f"{name}: features, per clip")) if cos else None,
        })
    return rows


def write_report(run_dir: str | Path, say: Callable[[str], None] = lambda s: None) -> Path:
    """Write RUN/report.html from the run's files; returns its path."""
    try:
        import jinja2
    except ImportError:
        raise PRPError("the run report needs Jinja2: pip install 'prp-deploy[train]'") from None
    run = Path(run_dir)
    ev, metrics = _load(run / "eval.json"), _load(run / "metrics.jsonl")
    export = run / "export"
    parity, model, bench = _load(export / "parity.json"), _load(export / "model.json"), _load(export / "bench.json")
    if ev is None and metrics is None:
        raise PRPError(f"{run}: no eval.json or metrics.jsonl: not a run folder (or it has not trained yet)")
    images: dict[str, str] = {}
    if metrics:
        images["curves"] = data_uri(curves_figure(metrics))
        images["lr"] = data_uri(lr_figure(metrics))
    classes = (ev or {}).get("classes") or (model or {}).get("classes") or []
    rec = (ev or {}).get("recognition") or {}
    per_class = []
    if rec.get("confusion"):
        names = classes or [str(i) for i in range(len(rec["confusion"]))]
        images["confusion"] = data_uri(confusion_figure(rec["confusion"], names, "test videos (10 clips each)"))
        per_class = [{"name": n, "videos": int(sum(row)), "accuracy": 100.0 * row[i] / max(1, sum(row))} for i, (n, row) in enumerate(zip(names, rec["confusion"]))]
    pretext = (ev or {}).get("pretext") or {}
    if pretext.get("confusion"):
        images["rates"] = data_uri(confusion_figure(pretext["confusion"], [f"{r}x" for r in pretext["rates"]],
                                                    "playback rate, validation clips", "predicted rate", "true rate"))
    examples = []
    for ex in ((ev or {}).get("retrieval") or {}).get("examples", []):
        examples.append({"query": Path(ex["query"]).name, "label": classes[ex["label"]] if classes else ex["label"], "thumb": _thumb(ex["query"]),
                         "hits": [{"name": Path(h["video"]).name, "score": h["score"], "hit": h["label"] == ex["label"],
                                   "label": classes[h["label"]] if classes else h["label"], "thumb": _thumb(h["video"])} for h in ex["hits"]]})
    explain = []
    if (export / "model_explain.onnx").exists() and examples:
        explain = _explain_images(export, [ex["query"] for ex in ev["retrieval"]["examples"][:3]], say)
    cfg = (ev or {}).get("config") or {}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.get_template(TEMPLATE.name).render(
        run=run.name, ev=ev or {}, rec=rec, pretext=pretext, retrieval=(ev or {}).get("retrieval") or {}, cfg=cfg, images=images,
        per_class=per_class, examples=examples, explain=explain, parity=parity, parity_rows=_parity_rows(parity) if parity else [],
        int8=(parity or {}).get("build", {}).get("onnxruntime-int8"), bench=bench, model=model or {},
        config_brief=json.dumps({k: cfg.get(k) for k in ("model", "pretrain", "finetune", "seed") if k in cfg}, indent=1)[:4000])
    out = run / REPORT_FILE
    atomic_write(out, html)
    return out


def refresh_report(run_dir: Path, say: Callable[[str], None]) -> None:
    """write_report for `train` and `export`: a report that cannot be written is said, never fatal
    (the run's checkpoints and exports are what matter)."""
    try:
        say(f"report: {write_report(run_dir, say)}")
    except (PRPError, OSError, ValueError) as e:
        say(f"report: not written ({e})")


__all__ = ["REPORT_FILE", "refresh_report", "write_report"]
