"""`prp-deploy eval CKPT|RUN --data ROOT --dataset LAYOUT`: a checkpoint judged on another dataset
by the functions eval.json uses, with what does not apply said, not faked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.errors import PRPError
from prp_deploy.rundir import load_checkpoint
from prp_deploy.training.crosseval import evaluate_on
from prp_deploy.training.evaluate import majority_chance
from tests.runs import make_run

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "prp_deploy"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The runs' data, and another dataset made differently (other seed, size, lengths) with the same 3 classes."""
    root = tmp_path_factory.mktemp("xeval")
    own = write_synthetic(root / "own", SynthSpec(classes=3, groups=3, clips_per_group=2, width=64, height=48, min_frames=20, max_frames=30))
    other = write_synthetic(root / "other", SynthSpec(classes=3, groups=3, clips_per_group=2, width=80, height=60, min_frames=70, max_frames=90,
                                                      seed=11))
    return own, other


def test_a_pretrained_encoder_on_another_dataset(datasets, tmp_path):
    own, other = datasets
    run = make_run(tmp_path / "run", own, "r3d", seed=1, stage="pretrain")
    result, out = evaluate_on(run, str(other), "ucf101")
    assert out == run / "eval-ucf101-other.json" and json.loads(out.read_text())["checkpoint"] == str(run / "pretrain" / "best.pt")
    p = result["pretext"]
    labels = [i for i, n in enumerate(p["label_counts"]) for _ in range(n)]
    assert p["clips"] == sum(p["label_counts"]) > 0 and p["chance"] == pytest.approx(majority_chance(labels, 4))
    assert 0 <= p["rate_accuracy"] <= 100 and sum(map(sum, p["confusion"])) == p["clips"]
    assert result["recognition"] is None and result["dataset"] == "ucf101" and result["data"] == str(other)
    assert result["retrieval"]["queries"] == result["test_videos"] and result["retrieval"]["gallery"] == result["training_videos"]


def test_a_kept_epoch_is_evaluated_and_finetuned_from(datasets, tmp_path):
    """`train --keep-epochs` leaves pretrain/epoch-N.pt: `eval` judges it, `--init-from` finetunes from it."""
    from dataclasses import replace

    from prp_deploy.training.pipeline import train
    from tests.runs import tiny_run_config

    own, other = datasets
    cfg = tiny_run_config(own, "r3d", 0, "dgp")
    cfg = replace(cfg, pretrain=replace(cfg.pretrain, select="val_loss"))  # a rule that keeps no epoch of its own
    run = train(cfg, stage="pretrain", out=tmp_path / "run", say=lambda s: None, keep_epochs=True)
    assert sorted(p.name for p in (run / "pretrain").glob("epoch-*.pt")) == ["epoch-0.pt", "epoch-1.pt"]
    longer = replace(cfg, pretrain=replace(cfg.pretrain, epochs=2))  # a resume that extends it, without the flag: still kept
    train(longer, stage="pretrain", out=run, resume=True, say=lambda s: None)
    assert sorted(p.name for p in (run / "pretrain").glob("epoch-*.pt")) == ["epoch-0.pt", "epoch-1.pt", "epoch-2.pt"]
    result, _ = evaluate_on(run / "pretrain" / "epoch-0.pt", str(other), "ucf101", out=tmp_path / "e0.json")
    assert result["stage"] == "pretrain" and result["pretext"]["clips"] > 0
    said, cfg = [], replace(cfg, finetune=replace(cfg.finetune, clips_per_epoch=16))  # a start is all this needs
    fine = train(cfg, stage="all", out=tmp_path / "fine", init=run / "pretrain" / "epoch-1.pt", say=said.append)
    assert any(f"initialised from {run / 'pretrain' / 'epoch-1.pt'}" in s for s in said)
    assert json.loads((fine / "eval.json").read_text())["pretrained_from"] == str(run / "pretrain" / "epoch-1.pt")


def test_select_average_in_a_real_pretraining(datasets, tmp_path):
    """`--select average` through `train`: best.pt is the mean of the last epochs (here both of
    2), finetuning and eval read it, and the run says so."""
    from dataclasses import replace

    from prp_deploy.training.pipeline import train
    from tests.runs import tiny_run_config

    own, _ = datasets
    cfg = tiny_run_config(own, "r3d", 0, "dgp")
    cfg = replace(cfg, pretrain=replace(cfg.pretrain, select="average", epochs=2), finetune=replace(cfg.finetune, clips_per_epoch=16))
    said = []
    run = train(cfg, stage="all", out=tmp_path / "run", say=said.append)
    pre = run / "pretrain"
    best, kept = load_checkpoint(pre / "best.pt"), [load_checkpoint(pre / f"epoch-{e}.pt")["model"] for e in (1, 2)]
    assert best["averaged_epochs"] == [1, 2] and not (pre / "epoch-0.pt").exists()
    for k, v in best["model"].items():
        if v.is_floating_point():
            assert torch.allclose(v, (kept[0][k] + kept[1][k]) / 2, atol=1e-6), k
    assert any("best.pt is the mean of epochs 1-2's weights" in s for s in said)
    assert json.loads((run / "eval.json").read_text())["pretext"]["clips"] > 0


def test_a_finetuned_model_on_the_same_classes_and_on_others(datasets, tmp_path):
    own, other = datasets
    run = make_run(tmp_path / "run", own, "r3d", seed=3)
    result, _ = evaluate_on(run / "finetune" / "best.pt", str(other), "ucf101", out=tmp_path / "x.json")
    assert result["recognition"]["videos"] == result["test_videos"] and result["pretext"] is None and "pretext_note" in result
    # A folder dataset of other class names: recognition is said not to apply, retrieval still runs.
    folder = tmp_path / "folder"
    for i, v in enumerate(sorted((other / "UCF-101").rglob("*.avi"))):
        dest = folder / ("left" if i % 2 else "right") / v.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(v, dest)
    result, _ = evaluate_on(run, str(folder), "folder", out=tmp_path / "y.json")
    assert result["recognition"] is None and "the dataset has 2 others" in result["recognition_note"]
    assert result["retrieval"]["queries"] > 0


def test_eval_command_errors(tmp_path):
    r = subprocess.run([*CLI, "eval", str(tmp_path), "--data", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--dataset" in r.stderr
    r = subprocess.run([*CLI, "eval", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "not a trained run folder" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(PRPError, match="no such checkpoint"):
        evaluate_on(tmp_path / "nope.pt", None, None)
    # --out naming a folder (a trailing slash, or one that exists) or a non-JSON file: one line, exit 2, before any work.
    (tmp_path / "out").mkdir()
    for out, said in ((tmp_path / "out", "names a folder"), (f"{tmp_path}/new/", "give a .json"), (tmp_path / "r.txt", "give a .json")):
        r = subprocess.run([*CLI, "eval", str(tmp_path), "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list((tmp_path / "out").iterdir()) == []
