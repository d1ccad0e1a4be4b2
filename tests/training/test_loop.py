"""The training loop's choice of best.pt, driven with scripted validation results: a test
that fails when the rule is wrong, whatever the data do (a real run's validation loss may
simply fall every epoch, and then any rule passes)."""

import pytest
import torch

from prp_deploy.rundir import load_checkpoint
from prp_deploy.training.common import MetricsLog, Runtime, StopFlag
from prp_deploy.training.loop import Stage, run_stage


class _Clips(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"clip": torch.full((1, 2, 2, 2), float(i))}

    def set_epoch(self, epoch):
        pass  # the loop's per-epoch hook: a fixed toy set has nothing to redraw


def _stage(tmp_path, scripted: list[dict], select: str, mode: str, keep_from: int | None = None, epochs: int | None = None,
           average_last: int = 0) -> Stage:
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    results = iter(scripted)

    def step(net, batch):
        return net(batch["clip"].flatten(1)).pow(2).mean(), {}

    return Stage("pretrain", tmp_path / "pretrain", model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10), False, _Clips(), step,
                 lambda m: dict(next(results)), select, mode, epochs or len(scripted), 2, 0, 0, 0.0, {"encoder": {"backbone": "toy"}}, keep_from,
                 average_last)


@pytest.mark.parametrize("scripted,select,mode,best", [
    ([3.0, 1.0, 2.0], "val_loss", "min", 2),  # the lowest loss, not the last
    ([1.0, 1.0, 0.5], "val_loss", "min", 3),
    ([2.0, 2.0, 2.0], "val_loss", "min", 1),  # an equal score never replaces best.pt
    ([40.0, 70.0, 60.0], "val_accuracy", "max", 2),  # finetuning selects by accuracy
])
def test_best_checkpoint_is_the_epoch_the_rule_picks(scripted, select, mode, best, tmp_path):
    records = [{"val_loss": v, "val_accuracy": v} for v in scripted]
    record = run_stage(_stage(tmp_path, records, select, mode), Runtime(torch.device("cpu")), MetricsLog(tmp_path, enabled=False),
                       resume=False, stop=StopFlag(), say=lambda s: None)
    assert record["epoch"] == best and load_checkpoint(tmp_path / "pretrain" / "best.pt")["epoch"] == best
    assert load_checkpoint(tmp_path / "pretrain" / "last.pt")["epoch"] == len(scripted)


@pytest.mark.parametrize("rule,best", [("val_loss", 2), ("rate_accuracy", 1), ("last", 3)])
def test_pretrain_select_rules(rule, best, tmp_path):
    """pretrain.select through the table the pretraining stage reads: on one scripted history (loss
    lowest at epoch 2, rate accuracy highest at epoch 1), each rule picks its own epoch, and
    the line said at the end names it and why."""
    from prp_deploy.training.config import PRETRAIN_SELECT
    from prp_deploy.training.pipeline import selection_line

    history = [{"val_loss": 0.3, "val_rate_accuracy": 80.0}, {"val_loss": 0.1, "val_rate_accuracy": 60.0},
               {"val_loss": 0.2, "val_rate_accuracy": 70.0}]
    record = run_stage(_stage(tmp_path, history, *PRETRAIN_SELECT[rule]), Runtime(torch.device("cpu")), MetricsLog(tmp_path, enabled=False),
                       resume=False, stop=StopFlag(), say=lambda s: None)
    assert record["epoch"] == best and load_checkpoint(tmp_path / "pretrain" / "best.pt")["epoch"] == best
    line = selection_line(rule, record)
    assert f"best.pt is epoch {best} (pretrain.select {rule}" in line and ("rate accuracy" in line or rule == "rate_accuracy")


def test_keep_epochs_writes_every_epochs_weights(tmp_path):
    """--keep-epochs: epoch-0.pt is the init, epoch-N.pt the weights after epoch N with its record,
    the last one the weights last.pt holds; without the flag none is written."""
    history = [{"val_loss": v} for v in (0.3, 0.1, 0.2)]
    stage = _stage(tmp_path, history, "val_loss", "min", keep_from=0)
    init = {k: v.clone() for k, v in stage.model.state_dict().items()}
    run_stage(stage, Runtime(torch.device("cpu")), MetricsLog(tmp_path, enabled=False), resume=False, stop=StopFlag(), say=lambda s: None)
    pre = tmp_path / "pretrain"
    kept = [load_checkpoint(pre / f"epoch-{e}.pt") for e in range(4)]
    assert all(torch.equal(kept[0]["model"][k], v) for k, v in init.items())
    assert [k["epoch"] for k in kept] == [0, 1, 2, 3] and [k["record"] and k["record"]["val_loss"] for k in kept] == [None, 0.3, 0.1, 0.2]
    last, best = load_checkpoint(pre / "last.pt"), load_checkpoint(pre / "best.pt")
    assert all(torch.equal(kept[3]["model"][k], v) for k, v in last["model"].items())
    assert all(torch.equal(kept[2]["model"][k], v) for k, v in best["model"].items())
    assert not torch.equal(kept[1]["model"]["weight"], kept[2]["model"]["weight"])  # each file is its own epoch's
    assert kept[0]["encoder"] == {"backbone": "toy"} and "optimizer" not in kept[1]  # rebuildable, weights only

    plain = tmp_path / "plain"
    run_stage(_stage(plain, history, "val_loss", "min"), Runtime(torch.device("cpu")), MetricsLog(plain, enabled=False),
              resume=False, stop=StopFlag(), say=lambda s: None)
    assert not list((plain / "pretrain").glob("epoch-*.pt"))


def test_average_makes_best_the_mean_of_the_last_epochs(tmp_path):
    """pretrain.select average: only the averaged epochs are kept, best.pt holds their mean
    weights and the average is validated like an epoch (its own record, said in one line)."""
    from prp_deploy.training.config import AVERAGE_EPOCHS, PRETRAIN_SELECT
    from prp_deploy.training.loop import averaged_epochs
    from prp_deploy.training.pipeline import selection_line

    history = [{"val_loss": v} for v in (0.9, 0.5, 0.4, 0.3, 0.35)]  # the last is the average's validation
    stage = _stage(tmp_path, history, *PRETRAIN_SELECT["average"], epochs=4, average_last=AVERAGE_EPOCHS)
    rt = Runtime(torch.device("cpu"))
    record = run_stage(stage, rt, MetricsLog(tmp_path, enabled=False), resume=False, stop=StopFlag(), say=lambda s: None)
    pre = tmp_path / "pretrain"
    assert averaged_epochs(4, 3) == [2, 3, 4] and averaged_epochs(2, 3) == [1, 2]
    assert sorted(p.name for p in pre.glob("epoch-*.pt")) == ["epoch-2.pt", "epoch-3.pt", "epoch-4.pt"]
    kept = [load_checkpoint(pre / f"epoch-{e}.pt")["model"] for e in (2, 3, 4)]
    best = load_checkpoint(pre / "best.pt")
    for k in ("weight", "bias"):
        assert torch.allclose(best["model"][k], sum(m[k] for m in kept) / 3, atol=1e-7)
        assert not torch.equal(best["model"][k], kept[-1][k])
    assert best["averaged_epochs"] == [2, 3, 4] and record["val_loss"] == 0.35 and record["epoch"] == 4
    # Stopped between the last epoch and the average: a resume of the finished stage averages again, to the same weights.
    again = run_stage(_stage(tmp_path, [{"val_loss": 0.35}], *PRETRAIN_SELECT["average"], epochs=4, average_last=AVERAGE_EPOCHS), rt,
                      MetricsLog(tmp_path, enabled=False), resume=True, stop=StopFlag(), say=lambda s: None)
    assert again == record and torch.equal(load_checkpoint(pre / "best.pt")["model"]["weight"], best["model"]["weight"])
    assert selection_line("average", record) == ("pretrain: best.pt is the mean of epochs 2-4's weights (pretrain.select average), "
                                                  "validation loss 0.3500")


def test_select_is_validated_and_keeps_old_hashes(tmp_path):
    from prp_deploy.errors import PRPError
    from prp_deploy.rundir import write_run_config
    from prp_deploy.training.config_files import build_config, load_run_config

    tiny, paper = build_config("tiny", None, {}), build_config("paper", None, {})
    assert tiny.pretrain.select == "average" and paper.pretrain.select == "val_loss"  # measured (tiny) / the paper's rule
    assert build_config("tiny", None, {"pretrain": {"select": "last"}}).hash() != tiny.hash()
    # A run made before pretrain.select existed (no select key) is the val_loss rule and keeps its hash.
    before = tiny.to_dict()
    before["pretrain"].pop("select")
    write_run_config(tmp_path, before, "unused")
    old = load_run_config(tmp_path)
    assert old.pretrain.select == "val_loss" and old.hash() == build_config("tiny", None, {"pretrain": {"select": "val_loss"}}).hash()
    with pytest.raises(PRPError, match="pretrain.select must be one of"):
        build_config("tiny", None, {"pretrain": {"select": "best"}})
    with pytest.raises(PRPError, match="needs a playback-rate head"):
        build_config("tiny", None, {"pretrain": {"select": "rate_accuracy", "objective": "gp"}})
