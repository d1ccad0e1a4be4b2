"""curves.png as a reader sees it: labelled axes, whole epochs, and chance lines that say
which clips their chance is measured on."""

import matplotlib

matplotlib.use("Agg")

from prp_deploy.training.report import curves_figure, eval_summary  # noqa: E402


def _records():
    pre = [{"stage": "pretrain", "epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 30 + e,
            "val_rate_accuracy": 40 + e, "val_rate_chance": 28.0} for e in range(1, 8)]
    fine = [{"stage": "finetune", "epoch": e, "train_loss": 2 / e, "val_loss": 2.1 / e, "train_accuracy": 50 + e,
             "val_accuracy": 60 + e, "val_chance": 24.6} for e in range(1, 6)]
    return pre + fine


def test_curves_have_axis_labels_whole_epochs_and_named_chance_lines():
    fig = curves_figure(_records())
    loss, acc = fig.axes[0], fig.axes[2]  # pretrain column: loss, then accuracy
    assert loss.get_ylabel().startswith("loss") and acc.get_ylabel() == "accuracy %" and acc.get_xlabel() == "epoch"
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    legend = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]  # finetune accuracy
    assert "chance 24.6 % (majority class, val videos)" in legend, legend


def test_eval_line_says_where_its_chance_comes_from():
    line = eval_summary({"pretext": {"rate_accuracy": 75.0, "chance": 30.0}, "recognition": {"top1": 96.0, "chance": 12.5, "top5": 100.0},
                         "retrieval": {"top1": 70.0, "top5": 90.0, "chance": {"top1": 12.5}}})
    assert "(chance 12.5%, majority class of the test videos)" in line
