import pytest

from prp_deploy.errors import PRPError
from prp_deploy.training.config import TrainConfig, val_count
from prp_deploy.training.config_files import build_config, load_run_config


def test_preset_then_file_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: {backbone: c3d}\npretrain: {objective: dp, epochs: 7, intervals: [1, 2]}\n")
    cfg = build_config(None, f, {"pretrain": {"epochs": 3}})
    assert cfg.preset == "tiny"  # no --data: the small CPU preset
    assert cfg.model.backbone == "c3d" and cfg.pretrain.objective == "dp"
    assert cfg.pretrain.epochs == 3 and cfg.pretrain.intervals == (1, 2)
    assert cfg.model.width == 0.25  # from the tiny preset, untouched by file and flags
    paper = build_config(None, None, {"data": {"data": "/d", "dataset": "ucf101"}})
    assert paper.preset == "paper" and paper.pretrain.epochs == 300 and paper.data.preprocess.crop == 112


def test_unknown_keys_and_bad_values_are_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("pretrain: {objectiv: dp}\n")
    with pytest.raises(PRPError, match=r"c\.yaml: pretrain: unknown key 'objectiv'"):
        build_config(None, f, {})
    with pytest.raises(PRPError, match="clip length must be a multiple of 8"):
        build_config("tiny", None, {"data": {"preprocess": {"frames": 12}}})
    f.write_text("schema_version: 9\n")
    with pytest.raises(PRPError, match="schema_version 9"):
        build_config(None, f, {})
    f.write_text("[1, 2")
    with pytest.raises(PRPError, match="not valid YAML"):
        build_config(None, f, {})


def test_run_config_round_trips(tmp_path):
    import yaml

    cfg = build_config("tiny", None, {"seed": 4, "pretrain": {"intervals": [1, 2, 4]}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**cfg.to_dict(), "config_hash": cfg.hash(), "versions": {}}))
    back = load_run_config(tmp_path)
    assert back == cfg and back.hash() == cfg.hash()
    assert cfg.hash() != build_config("tiny", None, {"seed": 5}).hash()


def test_paper_preset_is_the_paper():
    """The paper's settings (Sec. 4.1, REFERENCE.md): the tiny preset's departures never leak into it."""
    cfg = build_config("paper", None, {})
    m, d, p, f = cfg.model, cfg.data, cfg.pretrain, cfg.finetune
    assert (m.backbone, m.depth, m.width, m.subtract_mean) == ("r21d", 10, 1.0, False)
    assert (d.preprocess.frames, d.preprocess.crop, d.preprocess.short_side, d.preprocess.sample_rate) == (16, 112, 128, 1)
    assert p.intervals == (1, 2, 4, 8) and p.rec_rate == 2 and p.motion_attention and (p.lambda_d, p.lambda_g) == (0.1, 1.0)
    assert (p.optimizer, p.lr, p.momentum, p.weight_decay, p.schedule, p.epochs, p.head_lr_mult) == ("sgd", 0.01, 0.9, 5e-4, "plateau", 300, 10.0)
    assert (f.optimizer, f.lr, f.momentum, f.weight_decay, f.schedule, f.epochs) == ("sgd", 1e-3, 0.9, 5e-4, "step", 150)
    assert p.clips_per_epoch is None and f.clips_per_epoch is None
    assert f.labels_per_class is None and f.label_fraction is None  # every label, as the paper finetunes
    assert cfg.eval.clips == 10


def test_label_budget_flags_and_errors():
    tiny = build_config("tiny", None, {})
    assert tiny.finetune.labels_per_class == 16 and tiny.finetune.label_fraction is None
    with pytest.raises(PRPError, match="not both"):
        build_config("tiny", None, {"finetune": {"label_fraction": 0.5}})
    with pytest.raises(PRPError, match=r"label_fraction must be in \(0, 1\]"):
        build_config("tiny", None, {"finetune": {"labels_per_class": None, "label_fraction": 1.5}})
    with pytest.raises(PRPError, match="optimizer must be one of"):
        build_config("tiny", None, {"pretrain": {"optimizer": "lamb"}})


def test_labelled_subset_per_class_and_fraction():
    from pathlib import Path

    from prp_deploy.data.datasets import Video
    from prp_deploy.training.config import FinetuneConfig
    from prp_deploy.training.splits import labelled_subset

    videos = [Video(Path(f"c{c}/v{i}.avi"), c) for c in range(3) for i in range(10 if c else 3)]
    few = labelled_subset(videos, FinetuneConfig(labels_per_class=4), seed=0)
    assert [sum(v.label == c for v in few) for c in range(3)] == [3, 4, 4]  # a class with fewer keeps all it has
    assert labelled_subset(videos, FinetuneConfig(labels_per_class=4), seed=0) == few  # seeded
    assert labelled_subset(videos, FinetuneConfig(labels_per_class=4), seed=1) != few
    half = labelled_subset(videos, FinetuneConfig(label_fraction=0.5), seed=0)
    assert [sum(v.label == c for v in half) for c in range(3)] == [2, 5, 5]
    assert labelled_subset(videos, FinetuneConfig(), seed=0) == videos


def test_validation_count_defaults_and_cap():
    cfg = TrainConfig()
    assert val_count(cfg, "ucf101", 9537) == 800
    assert val_count(cfg, "hmdb51", 3570) == 400
    assert val_count(cfg, "ucf101", 100) == 15  # never above 15 % of the training list


def test_yaml_values_are_typed(tmp_path):
    """PyYAML reads `1e-3` as a string: it is a float here. Wrong types, unknown keys and bad
    values are one line naming the key and the file."""
    f = tmp_path / "c.yaml"
    f.write_text("pretrain: {lr: 1e-3}\nfinetune: {weight_decay: 5e-4}\n")
    cfg = build_config(None, f, {})
    assert cfg.pretrain.lr == 0.001 and isinstance(cfg.pretrain.lr, float) and cfg.finetune.weight_decay == 5e-4
    for text, message in [("data: {workers: 2.5}", r"c\.yaml: data\.workers: expected an integer, got 2\.5"),
                          ("pretrain: {motion_attention: 'no'}", r"pretrain\.motion_attention: expected true or false"),
                          ("pretrain: {intervals: [1, 2, x]}", r"pretrain\.intervals\[2\]: expected an integer"),
                          ("pretrain: {lr: fast}", r"pretrain\.lr: expected a number, got 'fast'"),
                          ("data: {preprocess: {crop: 64, short_side: 48}}", r"data\.preprocess: crop 64 is larger"),
                          ("schema_version: 2\ndata: {short_side: 48}", r"data: unknown key 'short_side'"),
                          ("model: {backbone: i3d}", r"c\.yaml: unknown backbone 'i3d'"),
                          ("data: 5", r"c\.yaml: data: ")]:
        f.write_text(text)
        with pytest.raises(PRPError, match=message) as e:
            build_config(None, f, {})
        assert "\n" not in str(e.value)


def test_schema_1_configs_still_load(tmp_path):
    """config.yaml of runs made before the preprocessing spec moved into data.preprocess."""
    f = tmp_path / "c.yaml"
    f.write_text("schema_version: 1\npreset: tiny\ndata: {short_side: 48, crop: 32, frames: 8}\n")
    assert build_config(None, f, {}).data.preprocess.short_side == 48
    f.write_text("data: {short_side: 48, crop: 32, frames: 8}\n")  # a hand-written file without a version
    assert build_config(None, f, {}).data.preprocess.short_side == 48


@pytest.mark.slow
def test_cli_yaml_errors_are_one_line_exit_1(tmp_path):
    import subprocess
    import sys

    f = tmp_path / "c.yaml"
    for text in ("data: {workers: 2.5}", "pretrain: {bogus: 1}"):
        f.write_text(text)
        r = subprocess.run([sys.executable, "-m", "prp_deploy", "train", "--config", str(f), "--out", str(tmp_path / "run")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and str(f) in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "run").exists()


def test_every_shipped_config_loads():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert len(files) >= 16
    for f in files:
        cfg = build_config(None, f, {"data": {"data": "/datasets/x"}})
        assert cfg.preset == "paper" and cfg.data.dataset in ("ucf101", "hmdb51"), f


def test_the_readmes_preset_table_says_what_the_code_does():
    """The manual's tiny row (docs/training.md) once said 5 pretraining epochs when the code said 7."""
    from prp_deploy.training.config import tiny_preset
    from tests.conftest import REPO

    row = next(l for l in (REPO / "docs" / "training.md").read_text().splitlines() if l.startswith("| `tiny` |"))
    t = tiny_preset()
    assert f"{t.pretrain.epochs} epochs × {t.pretrain.clips_per_epoch:,} clips" in row, row
    assert f"{t.finetune.epochs} epochs × {t.finetune.clips_per_epoch:,} clips" in row, row
    assert f"{t.finetune.labels_per_class} per class" in row and f"× {t.model.width}" in row, row
