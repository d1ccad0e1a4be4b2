"""Training end to end on a tiny synthetic dataset: learning, resume, best checkpoint, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from prp_deploy.contracts import validate
from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.errors import PRPError
from prp_deploy.rundir import load_checkpoint
from prp_deploy.training.config_files import build_config
from prp_deploy.training.pipeline import train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    return write_synthetic(root, SynthSpec(classes=3, groups=3, clips_per_group=3, width=64, height=48, min_frames=40, max_frames=60))


def tiny_cfg(data: Path, **over):
    base = {
        "model": {"backbone": "r3d", "width": 0.125},
        "data": {"data": str(data), "dataset": "ucf101", "preprocess": {"short_side": 40, "frames": 8, "crop": 32}, "workers": 0, "use_cache": False},
        # Epochs of one clip per video and every label: the tiny preset's step budget is for real data, not tests.
        "pretrain": {"objective": "dgp", "intervals": [1, 2, 4], "epochs": 2, "batch_size": 6, "lr": 0.01, "clips_per_epoch": None},
        "finetune": {"epochs": 2, "batch_size": 6, "clips_per_epoch": None, "labels_per_class": None},
        "eval": {"clips": 2},
    }
    for k, v in over.items():
        base.setdefault(k, {}).update(v) if isinstance(v, dict) else base.__setitem__(k, v)
    return build_config("tiny", None, base)


def quiet(_):
    pass


def test_full_run_writes_the_run_folder(tiny_data, tmp_path):
    run = train(tiny_cfg(tiny_data), out=tmp_path / "run", say=quiet)
    for f in ("config.yaml", "metrics.jsonl", "eval.json", "curves.png", "pretrain/best.pt", "pretrain/last.pt", "finetune/best.pt", "finetune/last.pt"):
        assert (run / f).exists(), f
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    ev = json.loads((run / "eval.json").read_text())
    validate(ev, "eval", "eval.json")  # the contract (prp_deploy/contracts/eval.schema.json)
    assert ev["schema_version"] == 1 and ev["seed"] == 0 and "torch" in ev["versions"]
    counts = ev["pretext"]["label_counts"]  # chance is the majority label's share of the clips actually drawn
    assert ev["pretext"]["chance"] == pytest.approx(100 * max(counts) / sum(counts)) and ev["pretext"]["uniform_chance"] == pytest.approx(100 / 3)
    assert sum(counts) == ev["pretext"]["clips"] > 0
    assert ev["recognition"]["chance"] == pytest.approx(100 / 3)  # 3 test videos of each of 3 classes
    assert set(ev["retrieval"]["chance"]) == {"top1", "top5", "top10", "top20", "top50"}
    assert ev["retrieval"]["chance"]["top1"] == pytest.approx(100 / 3) and ev["retrieval"]["chance"]["top50"] == 100
    assert ev["labels"]["labelled_videos"] == ev["labels"]["training_videos"]
    assert ev["recognition"]["videos"] == 9 and ev["recognition"]["clips_per_video"] == 2
    assert ev["retrieval"]["queries"] == 9 and ev["retrieval"]["gallery"] == 18  # every video counts
    assert {"top1", "top5", "top10", "top20", "top50"} <= set(ev["retrieval"])
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(l["stage"], l["epoch"]) for l in lines] == [("pretrain", 1), ("pretrain", 2), ("finetune", 1), ("finetune", 2)]
    state = load_checkpoint(run / "finetune" / "best.pt")
    assert state["classes"] == ["SlideRight", "SlideLeft", "SlideUp"] and state["preprocess"]["crop"] == 32


@pytest.mark.slow
def test_pretraining_loss_decreases(tiny_data, tmp_path):
    pre = {"objective": "dgp", "epochs": 4, "lr": 0.05, "batch_size": 4, "clips_per_video": 4, "motion_attention": False}
    run = train(tiny_cfg(tiny_data, pretrain=pre, finetune={"epochs": 0}), stage="pretrain", out=tmp_path / "run", say=quiet)
    losses = [json.loads(l)["train_loss"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.95 * losses[0], losses


@pytest.mark.slow
def test_resume_gives_the_same_weights_as_a_straight_run(tiny_data, tmp_path):
    # A 1-epoch run extended to 2 on resume equals a straight 2-epoch run only under a schedule
    # that does not depend on the total length: the paper's (SGD, plateau). A cosine schedule
    # is a function of the total step count, so extending it changes the curve by design.
    cfg = tiny_cfg(tiny_data, pretrain={"optimizer": "sgd", "schedule": "plateau"}, finetune={"epochs": 0})
    straight = train(cfg, stage="pretrain", out=tmp_path / "a", say=quiet)
    one = train(replace(cfg, pretrain=replace(cfg.pretrain, epochs=1)), stage="pretrain", out=tmp_path / "b", say=quiet)
    resumed = train(cfg, stage="pretrain", out=one, resume=True, say=quiet)
    a, b = load_checkpoint(straight / "pretrain" / "last.pt"), load_checkpoint(resumed / "pretrain" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and b["finished"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    # Same parameters and buffers first (zip would pass an empty restored state), then equal values.
    assert sa.keys() == sb.keys() and len(sa) > 0
    assert [g["lr"] for g in a["optimizer"]["param_groups"]] == [g["lr"] for g in b["optimizer"]["param_groups"]]
    for i in sa:
        assert sa[i].keys() == sb[i].keys() and sa[i], i  # SGD's momentum buffer (the paper's optimiser here)
        for key in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][key]), torch.as_tensor(sb[i][key])), (i, key)


def test_best_checkpoint_is_never_replaced_by_a_worse_one(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, pretrain={"epochs": 4, "lr": 0.2}, finetune={"epochs": 0})  # a high lr makes val loss jump around
    run = train(cfg, stage="pretrain", out=tmp_path / "run", say=quiet)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    best_epoch = min(lines, key=lambda l: (l["val_loss"], l["epoch"]))["epoch"]
    best = load_checkpoint(run / "pretrain" / "best.pt")
    assert best["epoch"] == best_epoch
    running = float("inf")
    for l in lines:
        assert l["best"] == (l["val_loss"] < running)
        running = min(running, l["val_loss"])


def test_finetune_refuses_an_encoder_of_another_backbone(tiny_data, tmp_path):
    c3d = train(tiny_cfg(tiny_data, model={"backbone": "c3d"}, pretrain={"epochs": 1}), stage="pretrain", out=tmp_path / "c3d", say=quiet)
    with pytest.raises(PRPError, match=r"holds a c3d .* encoder, this run builds r3d .*pass --backbone c3d"):
        train(tiny_cfg(tiny_data), stage="finetune", out=tmp_path / "ft", init=c3d / "pretrain" / "best.pt", say=quiet)


def test_existing_run_is_not_overwritten(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, pretrain={"epochs": 1}, finetune={"epochs": 0})
    run = train(cfg, stage="pretrain", out=tmp_path / "run", say=quiet)
    before = (run / "pretrain" / "best.pt").read_bytes()
    with pytest.raises(PRPError, match="already holds a run"):
        train(cfg, out=run, say=quiet)
    assert (run / "pretrain" / "best.pt").read_bytes() == before


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_cli_errors_are_one_line(tiny_data, tmp_path):
    r = cli("train", "--data", str(tmp_path / "absent"), "--dataset", "ucf101")
    assert r.returncode == 1 and "no such dataset folder" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 50)
    common = ["--data", str(tiny_data), "--dataset", "ucf101", "--backbone", "r3d", "--width", "0.125", "--frames", "8", "--crop", "32",
              "--short-side", "40", "--workers", "0", "--finetune-epochs", "1", "--stage", "finetune"]
    r = cli("train", *common, "--init", str(bad), "--out", str(tmp_path / "r1"))
    assert r.returncode == 1 and "not a readable checkpoint" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", *common, "--out", str(tmp_path / "r2"))
    assert r.returncode == 1 and "no pretrained encoder at" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3 and "Traceback" not in r.stderr


def long_pretraining(data: Path, out: Path) -> list[str]:
    """A pretraining of 50 epochs: long enough to be interrupted."""
    return ["train", "--data", str(data), "--dataset", "ucf101", "--backbone", "r3d", "--width", "0.125", "--frames", "8", "--crop", "32",
            "--short-side", "40", "--workers", "0", "--pretrain-epochs", "50", "--finetune-epochs", "0", "--stage", "pretrain",
            "--objective", "dp", "--out", str(out)]


def test_resume_refuses_a_flag_that_would_change_the_run(tiny_data, tmp_path):
    """--resume used to drop --backbone, --objective, ... silently and go on as configured."""
    run = train(tiny_cfg(tiny_data, pretrain={"epochs": 1}, finetune={"epochs": 0}), stage="pretrain", out=tmp_path / "run", say=quiet)
    for flags, field in ((["--backbone", "c3d"], "model.backbone is r3d there, the command gives c3d"),
                         (["--objective", "dp"], "pretrain.objective is dgp there"),
                         (["--intervals", "1,2"], "pretrain.intervals is [1, 2, 4] there, the command gives [1, 2]"),
                         (["--seed", "5"], "seed is 0 there, the command gives 5")):
        r = cli("train", "--resume", "--out", str(run), "--stage", "pretrain", *flags)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and field in r.stderr and "Traceback" not in r.stderr, r.stderr
    # Repeating the run's own values, and what resuming may change (more epochs, workers), are fine.
    r = cli("train", "--resume", "--out", str(run), "--stage", "pretrain", "--backbone", "r3d", "--workers", "0", "--pretrain-epochs", "2")
    assert r.returncode == 0 and "resuming at epoch 2" in r.stderr, r.stderr


def test_resume_accepts_the_command_that_made_the_run(tiny_data, tmp_path):
    """The up-arrow habit: the same --preset, --config and flags, plus --resume, continue the run;
    a config file that changes one value is refused naming it."""
    import yaml

    cfg = tiny_cfg(tiny_data, pretrain={"epochs": 1}, finetune={"epochs": 0})
    run = train(cfg, stage="pretrain", out=tmp_path / "run", say=quiet)
    mine = {k: v for k, v in cfg.to_dict().items() if k not in ("preset", "schema_version")}  # the user's own config file
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    mine["pretrain"]["batch_size"] = 4
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(mine))
    command = ["train", "--preset", "tiny", "--seed", "0", "--stage", "pretrain", "--out", str(run)]
    r = cli(*command, "--config", str(tmp_path / "changed.yaml"), "--resume")
    assert r.returncode == 1 and "pretrain.batch_size is 6 there, the command gives 4" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli(*command, "--config", str(tmp_path / "mine.yaml"), "--resume", "--pretrain-epochs", "2")
    assert r.returncode == 0 and "resuming at epoch 2" in r.stderr, r.stderr


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_finishes(tiny_data, tmp_path):
    out = tmp_path / "run"
    args = long_pretraining(tiny_data, out)
    proc = subprocess.Popen([sys.executable, "-m", "prp_deploy", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "pretrain" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    second = cli("train", "--resume", "--out", str(out), "--stage", "pretrain")  # one writer per run folder
    assert second.returncode == 1 and f"(PID {proc.pid})" in second.stderr and second.stderr.count("\n") == 1, second.stderr
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    state = load_checkpoint(out / "pretrain" / "last.pt")
    assert not state["finished"] and state["epoch"] < 50
    r = cli("train", "--resume", "--out", str(out), "--stage", "pretrain", "--pretrain-epochs", "50")
    assert r.returncode == 0, r.stderr
    assert "resuming at epoch" in r.stderr


@pytest.mark.slow
def test_ctrl_c_on_a_terminal_speaks_once_with_dataloader_workers(tiny_data, tmp_path):
    """A terminal's Ctrl-C signals the whole process group, DataLoader workers included: one
    "stopping after this step" line (it was printed once per process), and a clean stop."""
    out = tmp_path / "run"
    args = long_pretraining(tiny_data, out)
    args[args.index("--workers") + 1] = "2"
    proc = subprocess.Popen([sys.executable, "-m", "prp_deploy", *args], stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "pretrain" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.count("stopping after this step") == 1, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.slow
def test_a_killed_writer_leaves_no_stale_lock(tiny_data, tmp_path):
    out = tmp_path / "run"
    args = long_pretraining(tiny_data, out)
    proc = subprocess.Popen([sys.executable, "-m", "prp_deploy", *args], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    holding = lambda: (out / ".lock").exists() and (out / ".lock").read_text().strip() == str(proc.pid)  # noqa: E731
    while not (holding() and (out / "config.yaml").exists()) and time.time() < deadline:  # the lock held, the run written
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no handler runs, the OS drops the lock with the process
    proc.wait(timeout=60)
    r = cli("train", "--resume", "--out", str(out), "--stage", "pretrain", "--pretrain-epochs", "1")
    assert r.returncode == 0 and "another prp-deploy process" not in r.stderr, r.stderr


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(tiny_data, tmp_path):
    """Two processes (gloo): sharded epochs, rank 0 alone writes metrics, checkpoints and eval."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not beside this python")
    out = tmp_path / "run"
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "prp_deploy", "train", "--data", str(tiny_data),
                        "--dataset", "ucf101", "--backbone", "r3d", "--width", "0.125", "--frames", "8", "--crop", "32", "--short-side", "40",
                        "--workers", "0", "--pretrain-epochs", "2", "--finetune-epochs", "1", "--device", "cpu", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(l["stage"], l["epoch"]) for l in lines] == [("pretrain", 1), ("pretrain", 2), ("finetune", 1)]
    assert json.loads((out / "eval.json").read_text())["recognition"]["videos"] == 9
    assert r.stderr.count("pretrain epoch 1:") == 1  # one rank speaks


@pytest.mark.slow
def test_kill_anywhere_then_resume_matches_a_straight_run(tmp_path):
    """The short version of scripts/fault_train.py: SIGKILL at random instants, resume each
    time; checkpoints always load, best.pt never worsens, final weights and eval identical."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "fault_train.py"
    r = subprocess.run([sys.executable, str(script), "--kills", "2", "--json", str(tmp_path / "f.json")], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "f.json").read_text())
    assert result["kills"] == 2 and result["all_identical"] and result["rounds"] >= 1
