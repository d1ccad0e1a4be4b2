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


def test_validation_count_defaults_and_cap():
    cfg = TrainConfig()
    assert val_count(cfg, "ucf101", 9537) == 800
    assert val_count(cfg, "hmdb51", 3570) == 400
    assert val_count(cfg, "ucf101", 100) == 15  # never above 15 % of the training list
