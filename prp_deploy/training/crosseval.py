"""`prp-deploy eval CKPT|RUN --data ROOT --dataset LAYOUT`: a checkpoint judged on another
dataset, as eval.json judges it on its own (the same functions, evaluate.py).

- pretext: a pretrained encoder with its rate head (DP, DG-P): playback-rate accuracy on
  the dataset's test videos, beside its chance level;
- recognition: a finetuned model, when the dataset has the classes it was trained on (same
  names, same order); otherwise said and skipped;
- retrieval: the encoder's features, the test videos querying the training videos.

The result is written as JSON (default RUN/eval-<dataset>-<folder>.json), with the checkpoint,
the data, the preprocessing (the checkpoint's own) and the versions, next to the run's eval.json.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..data.clips import DecodedFrames
from ..data.preprocess import Preprocess
from ..data.tasks import resolve_index
from ..errors import PRPError
from ..files import atomic_write
from ..models import ActionRecognizer, PRPModel, build_encoder, encoder_config_of, load_encoder_weights
from ..rundir import load_checkpoint, versions
from .common import setup_runtime
from .config_files import load_run_config
from .evaluate import pretext, recognition, retrieval
from .stages import pretext_clips


def resolve(source: Path) -> tuple[Path, Path]:
    """(checkpoint, run folder) of RUN (its finetuned model, else its pretrained encoder) or RUN/<stage>/X.pt."""
    source = Path(source)
    if source.is_dir():
        for stage in ("finetune", "pretrain"):
            if (source / stage / "best.pt").exists():
                return source / stage / "best.pt", source
        raise PRPError(f"{source}: no finetune/best.pt or pretrain/best.pt: not a trained run folder")
    if not source.exists():
        raise PRPError(f"{source}: no such checkpoint or run folder")
    run = source.parent.parent
    if not (run / "config.yaml").exists():
        raise PRPError(f"{source}: not inside a run folder (RUN/<stage>/{source.name}); its run's config.yaml is needed")
    return source, run


def evaluate_on(source: Path, data: str | None, dataset: str | None, split: int = 1, out: Path | None = None,
                clips: int | None = None, say: Callable[[str], None] = lambda s: None) -> tuple[dict, Path]:
    ckpt, run = resolve(source)
    cfg = load_run_config(run)
    state = load_checkpoint(ckpt)
    spec = Preprocess.from_dict(state["preprocess"])
    index = resolve_index(data, dataset, split, say)
    cfg = replace(cfg, data=replace(cfg.data, data=str(index.root), dataset=index.name, split=index.split, preprocess=spec))
    rt = setup_runtime(cfg.device)
    clips = clips or cfg.eval.clips
    enc_cfg = encoder_config_of(state)
    result: dict = {"schema_version": 1, "checkpoint": str(ckpt), "stage": state.get("stage"), "dataset": index.name,
                    "data": str(index.root), "split": index.split, "classes": list(index.classes), "preprocess": spec.to_dict(),
                    "test_videos": len(index.test), "training_videos": len(index.train)}
    say(f"eval {ckpt} ({state.get('stage')}) on {index.root} ({index.name} split {index.split}: {len(index.train)} train / {len(index.test)} test videos)")

    result["pretext"] = None
    if state.get("stage") != "finetune" and state.get("intervals") and state.get("objective") in ("dp", "dgp"):
        model = PRPModel(build_encoder(enc_cfg), len(state["intervals"]), state.get("rec_rate"), enc_cfg.width)
        model.load_state_dict(state["model"])
        val = pretext_clips(cfg, list(index.test), DecodedFrames(spec.short_side), state["intervals"], None, train=False)
        result["pretext"] = {**pretext(model.to(rt.device), val, rt, cfg.pretrain.batch_size, cfg.data.workers), "videos": "test"}
    else:
        result["pretext_note"] = "no playback-rate head in this checkpoint (finetuned, or pretrained without DP/DG-P)"

    result["recognition"] = None
    if state.get("stage") == "finetune":
        if tuple(state["classes"]) == tuple(index.classes):
            model = ActionRecognizer(build_encoder(enc_cfg), len(state["classes"]))
            model.load_state_dict(state["model"])
            result["recognition"] = recognition(model.to(rt.device), index.test, spec, clips, rt, cfg.eval.batch_videos, cfg.data.workers)
            encoder = model.encoder
        else:
            result["recognition_note"] = (f"the model knows {len(state['classes'])} classes ({', '.join(state['classes'][:5])}...), "
                                          f"the dataset has {len(index.classes)} others: recognition needs the same classes")
            encoder = None
    if state.get("stage") != "finetune" or encoder is None:
        encoder = build_encoder(enc_cfg)
        load_encoder_weights(encoder, state, enc_cfg, ckpt)
    result["retrieval"] = retrieval(encoder.to(rt.device), index.train, index.test, spec, clips, rt, cfg.eval.retrieval_ks,
                                    cfg.eval.batch_videos, cfg.data.workers)
    result["versions"] = versions()
    out = Path(out) if out else run / f"eval-{index.name}-{re.sub(r'[^A-Za-z0-9._-]+', '_', index.root.name)}.json"
    atomic_write(out, json.dumps(result, indent=2))
    return result, out


def summary(r: dict) -> str:
    parts = []
    if r.get("pretext"):
        parts.append(f"rate acc {r['pretext']['rate_accuracy']:.1f}% (chance {r['pretext']['chance']:.1f}%, {r['pretext']['clips']} clips)")
    if r.get("recognition"):
        parts.append(f"recognition top1 {r['recognition']['top1']:.1f}% (chance {r['recognition']['chance']:.1f}%)")
    ret = r["retrieval"]
    parts.append(f"retrieval top1 {ret['top1']:.1f}% (chance {ret['chance']['top1']:.1f}%) @5 {ret['top5']:.1f}%")
    return "eval: " + "; ".join(parts)
