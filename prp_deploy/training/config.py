"""Training configuration: small frozen dataclasses, YAML only at the edge.

A run's `config.yaml` is `TrainConfig.to_dict()`; `--config FILE.yaml` is merged onto a
preset and flags onto that (config_files.py: build_config, load_run_config), and the result is typed by cattrs: an unknown key, a value of
the wrong type (`workers: 2.5`) or a bad value is one line naming the key and the file (a
misspelt option must fail where it was written, not be ignored). Numbers YAML reads as
strings (`lr: 1e-3`) are taken as floats.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import cattrs

from ..data.preprocess import Preprocess
from ..data.splits import held_out_count
from ..errors import PRPError
from ..models import EncoderConfig, check_input_shape

SCHEMA_VERSION = 2  # 2: data.preprocess holds the preprocessing spec (1 had its fields in data)
OBJECTIVES = ("dgp", "dp", "gp", "none")
OPTIMIZERS = ("sgd", "adam")
PRETRAIN_SCHEDULES = ("plateau", "cosine")
# pretrain.select → (the validation record key, better when) that picks pretrain/best.pt; "last": every epoch replaces it;
# "average": as last during training, then best.pt becomes the mean of the last AVERAGE_EPOCHS epochs' weights.
PRETRAIN_SELECT = {"val_loss": ("val_loss", "min"), "rate_accuracy": ("val_rate_accuracy", "max"), "last": ("epoch", "max"),
                   "average": ("epoch", "max")}
AVERAGE_EPOCHS = 3
FINETUNE_SCHEDULES = ("step", "cosine")
# Validation videos held out of the training list, as the reference code did.


@dataclass(frozen=True)
class DataConfig:
    data: str | None = None  # dataset root; None = the built-in synthetic dataset
    dataset: str | None = None  # ucf101 | hmdb51 | folder
    split: int = 1
    # Short side, crop, T, mean/std: the one spec that checkpoints, model.json and the runtime carry.
    preprocess: Preprocess = field(default_factory=Preprocess)
    val_videos: int | None = None  # None: 800 for UCF101, 400 for HMDB51; never above 15 % of train
    use_cache: bool = True  # read the frame cache where `data prepare` filled it
    workers: int = 4
    short_videos: str = "resample"  # a video too short for the drawn s: redraw s ("resample") or "pad"
    max_bad_fraction: float = 0.05  # unreadable videos tolerated per epoch


@dataclass(frozen=True)
class PretrainConfig:
    objective: str = "dgp"  # dgp | dp | gp | none (none = random init, the paper's baseline)
    intervals: tuple[int, ...] = (1, 2, 4, 8)  # S, the playback rates
    rec_rate: int = 2  # r
    motion_attention: bool = True
    interpolated_in_loss: bool = True  # the paper; False leaves interpolated target frames out (reference code)
    lambda_d: float = 0.1
    lambda_g: float = 1.0
    epochs: int = 300
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_lr_mult: float = 10.0  # the rate head learns 10× faster
    plateau_patience: int = 50
    plateau_factor: float = 0.1
    random_crop: bool = True  # the paper; the reference code center-cropped in pretraining
    clips_per_video: int = 1  # samples drawn from each video per epoch (more steps on a small dataset)
    clips_per_epoch: int | None = None  # set: an epoch is this many samples whatever the dataset's size
    val_clips: int = 1  # clips drawn from each validation video (fixed across epochs) for val loss and rate accuracy
    optimizer: str = "sgd"  # sgd (the paper) | adam
    schedule: str = "plateau"  # plateau (the paper: ReduceLROnPlateau on val loss) | cosine (per step, 5 % warm-up)
    # Which epoch's encoder becomes pretrain/best.pt (what finetuning, `export --from pretrain` and
    # retrieval read): val_loss (the paper's reference code), rate_accuracy (DP, DG-P) or last.
    select: str = "val_loss"


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 150
    batch_size: int = 8
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    step_size: int = 100
    gamma: float = 0.1
    dropout: float = 0.0
    val_clips: int = 1  # clips per validation video (spread as in evaluation) for model selection
    clips_per_video: int = 1
    clips_per_epoch: int | None = None  # set: an epoch is this many samples whatever the dataset's size
    optimizer: str = "sgd"  # sgd (the paper) | adam
    schedule: str = "step"  # step (the paper: StepLR) | cosine (per step, 5 % warm-up)
    # Label budget (the self-supervised protocol): finetune on this many labelled training
    # videos per class, or this fraction of them; the rest stay unlabelled (pretraining uses all).
    labels_per_class: int | None = None
    label_fraction: float | None = None


@dataclass(frozen=True)
class EvalConfig:
    clips: int = 10
    retrieval_ks: tuple[int, ...] = (1, 5, 10, 20, 50)
    batch_videos: int = 4


@dataclass(frozen=True)
class TrainConfig:
    model: EncoderConfig = field(default_factory=EncoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    preset: str = "paper"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return json.loads(json.dumps(converter.unstructure(self)))  # tuples → lists, a plain YAML-able tree

    def hash(self) -> str:
        """Identity of what was trained (device and worker count excluded: they do not change the result)."""
        d = self.to_dict()
        d.pop("device")
        d["data"].pop("workers")
        if d["pretrain"]["select"] == "val_loss":  # the rule before it could be chosen: runs made then keep their hash
            d["pretrain"].pop("select")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def validate(self) -> "TrainConfig":
        p, d, spec = self.pretrain, self.data, self.data.preprocess
        if p.objective not in OBJECTIVES:
            raise PRPError(f"objective must be one of {', '.join(OBJECTIVES)}, got {p.objective!r}")
        self.model.check()
        if p.rec_rate not in (1, 2, 4):
            raise PRPError(f"rec_rate must be 1, 2 or 4, got {p.rec_rate}")
        if not p.intervals or any(s < 1 for s in p.intervals) or len(set(p.intervals)) != len(p.intervals):
            raise PRPError(f"intervals must be distinct positive integers, got {list(p.intervals)}")
        check_input_shape(spec.frames, spec.crop, self.model.backbone)  # the backbone's registry strides
        if spec.sample_rate != 1:
            raise PRPError(f"preprocess.sample_rate must be 1 in training (PRP draws its own rates), got {spec.sample_rate}")
        if d.workers < 0 or not 0 <= d.max_bad_fraction <= 1:
            raise PRPError(f"data: workers >= 0 and 0 <= max_bad_fraction <= 1 are required, got {d.workers} and {d.max_bad_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise PRPError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if d.short_videos not in ("resample", "pad"):
            raise PRPError(f"short_videos must be resample or pad, got {d.short_videos!r}")
        if p.select not in PRETRAIN_SELECT:
            raise PRPError(f"pretrain.select must be one of {', '.join(PRETRAIN_SELECT)}, got {p.select!r}")
        if p.select == "rate_accuracy" and p.objective not in ("dp", "dgp"):
            raise PRPError(f"pretrain.select rate_accuracy needs a playback-rate head (objective dp or dgp), not {p.objective}")
        f = self.finetune
        for name, stage, schedules in (("pretrain", p, PRETRAIN_SCHEDULES), ("finetune", f, FINETUNE_SCHEDULES)):
            if stage.epochs < 0 or stage.batch_size < 1 or stage.lr <= 0:
                raise PRPError(f"{name}: epochs >= 0, batch_size >= 1 and lr > 0 are required")
            if stage.optimizer not in OPTIMIZERS:
                raise PRPError(f"{name}.optimizer must be one of {', '.join(OPTIMIZERS)}, got {stage.optimizer!r}")
            if stage.schedule not in schedules:
                raise PRPError(f"{name}.schedule must be one of {', '.join(schedules)}, got {stage.schedule!r}")
            if stage.clips_per_epoch is not None and stage.clips_per_epoch < 1:
                raise PRPError(f"{name}.clips_per_epoch must be >= 1, got {stage.clips_per_epoch}")
        if f.labels_per_class is not None and f.label_fraction is not None:
            raise PRPError("give either finetune.labels_per_class or finetune.label_fraction, not both")
        if f.labels_per_class is not None and f.labels_per_class < 1:
            raise PRPError(f"labels_per_class must be >= 1, got {f.labels_per_class}")
        if f.label_fraction is not None and not 0 < f.label_fraction <= 1:
            raise PRPError(f"label_fraction must be in (0, 1], got {f.label_fraction}")
        return self


def tiny_preset() -> TrainConfig:
    """Minutes on a 2-core CPU: a narrow R(2+1)D-10 on 8 × 32 × 32 clips, budgeted in SGD steps.

    Where it leaves the paper, and why (measured in docs/results.md):
    - frames read at a 36-pixel short side, 8 × 32² clips: what 2 cores can train in minutes;
    - `subtract_mean`: the encoder centres each pixel over the clip's time first; without it
      a small net fits each video's look long before its motion at this budget;
    - Adam with a per-step cosine schedule: SGD at the paper's rates barely moves in a few
      hundred steps; no 10× rate-head lr (Adam scales per weight already);
    - epochs of a fixed number of clips (`clips_per_epoch`), so a small dataset gets the same
      number of steps as a large one; 448 pretraining steps (7 epochs), most of the budget,
      since pretraining is what the encoder's retrieval features come from;
    - finetuning starts from the mean of the last 3 pretraining epochs' weights (`select:
      average`), not the lowest-validation-loss epoch: a handful of validation videos make
      that choice noisy, and on real clips it picked encoders below chance;
    - finetuning on 16 labelled videos per class (the rest unlabelled), at a 2× lower lr than
      pretraining so finetuning refines the pretrained encoder rather than overwrite it.
    """
    return TrainConfig(
        model=EncoderConfig("r21d", 10, 0.25, subtract_mean=True),
        data=DataConfig(preprocess=Preprocess(short_side=36, crop=32, frames=8), workers=2),
        pretrain=PretrainConfig(epochs=7, batch_size=32, lr=2e-3, optimizer="adam", schedule="cosine", head_lr_mult=1.0,
                                clips_per_epoch=2048, val_clips=4, weight_decay=0.0, select="average"),
        finetune=FinetuneConfig(epochs=5, batch_size=32, lr=1e-3, optimizer="adam", schedule="cosine", clips_per_epoch=2560,
                                val_clips=3, weight_decay=0.0, labels_per_class=16),
        eval=EvalConfig(clips=10),
        preset="tiny",
    )


PRESETS = {"paper": TrainConfig, "tiny": tiny_preset}


def _strict(kind: type, what: str):
    def hook(value, _):
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise TypeError(f"expected {what}, got {value!r}")
        return value

    return hook


def _number(value, _) -> float:
    """int, float, or a string YAML did not read as a number (PyYAML reads `1e-3` as one)."""
    wrong = TypeError(f"expected a number, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise wrong
    try:
        return float(value)
    except ValueError:
        raise wrong from None


converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))
converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(float, _number)
converter.register_structure_hook(Preprocess, lambda value, _: Preprocess.from_dict(value))
converter.register_unstructure_hook(Preprocess, Preprocess.to_dict)


def val_count(cfg: TrainConfig, dataset: str, n_train: int) -> int:
    """Videos held out of the training list for validation: the dataset default, capped at 15 %."""
    return held_out_count(cfg.data.val_videos, dataset, n_train)
