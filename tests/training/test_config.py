import pytest

from prp_deploy.errors import PRPError
from prp_deploy.training.config import TrainConfig, build_config, load_run_config, val_count


def test_preset_then_file_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: {backbone: c3d}\npretrain: {objective: dp, epochs: 7, intervals: [1, 2]}\n")
    cfg = build_config(None, f, {"pretrain": {"epochs": 3}})
    assert cfg.preset == "tiny"  # no --data: the small CPU preset
    assert cfg.model.backbone == "c3d" and cfg.pretrain.objective == "dp"
    assert cfg.pretrain.epochs == 3 and cfg.pretrain.intervals == (1, 2)
    assert cfg.model.width == 0.25  # from the tiny preset, untouched by file and flags
    paper = build_config(None, None, {"data": {"data": "/d", "dataset": "ucf101"}})
    assert paper.preset == "paper" and paper.pretrain.epochs == 300 and paper.data.crop == 112


def test_unknown_keys_and_bad_values_are_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("pretrain: {objectiv: dp}\n")
    with pytest.raises(PRPError, match=r"c\.yaml\.pretrain: unknown key 'objectiv'"):
        build_config(None, f, {})
    with pytest.raises(PRPError, match="frames must be a multiple of 8"):
        build_config("tiny", None, {"data": {"frames": 12}})
    f.write_text("schema_version: 9\n")
    with pytest.raises(PRPError, match="schema_version 9"):
        build_config(None, f, {})
    f.write_text("[1, 2")
    with pytest.raises(PRPError, match="not valid YAML"):
        build_config(None, f, {})


def test_run_config_round_trips(tmp_path):
    import yaml

    cfg = build_config("tiny", None, {"seed": 4, "pretrain": {"intervals": "1,2,4"}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**cfg.to_dict(), "config_hash": cfg.hash(), "versions": {}}))
    back = load_run_config(tmp_path)
    assert back == cfg and back.hash() == cfg.hash()
    assert cfg.hash() != build_config("tiny", None, {"seed": 5}).hash()


def test_paper_preset_is_the_paper():
    """The paper's settings (Sec. 4.1, REFERENCE.md): the tiny preset's departures never leak into it."""
    cfg = build_config("paper", None, {})
    m, d, p, f = cfg.model, cfg.data, cfg.pretrain, cfg.finetune
    assert (m.backbone, m.depth, m.width, m.subtract_mean) == ("r21d", 10, 1.0, False)
    assert (d.frames, d.crop, d.short_side) == (16, 112, 128)
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
