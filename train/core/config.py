"""RunConfig: every setting of one Real World or Ideal World run, its presets and its validation.

    cfg = RunConfig(data="datasets/digits", mode="real", n=500, steps=2000, out_dir="runs/r500")
    ideal = dataclasses.replace(cfg, mode="ideal", out_dir="runs/ideal")
    validate(cfg)            # TrainError naming the field, the value and the rule
    cfg.to_dict()            # JSON-able; RunConfig.from_dict(d) reads it back
    config_hash(cfg)         # what a run folder must match to be resumed

Both worlds share every field but `mode` (and `n`, which only the Real World uses): model and init seed,
optimizer, schedule over total steps, batch size, augmentation, precision and evaluation schedule.
Defaults reproduce the paper code's CIFAR-5m sweep (github.com/preetum/deep-bootstrap-code,
`inftrain/sample_sweep.json`); presets are plain dicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from train.core.schedule import parse_eval_schedule
from train.errors import TrainError

MODES = ("real", "ideal")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant", "step")
AUGS = ("none", "flip", "crop", "crop-flip", "rrc-flip", "resize-crop-flip")
PRECISIONS = ("auto", "fp32", "bf16")
# signed: uint8 / 255 then (x - 0.5) / 0.5, as inftrain/train.py; unit: uint8 / 255 (ToTensor alone), as
# inftrain/train_imgnet.py (github.com/preetum/deep-bootstrap-code).
INPUT_RANGES = ("signed", "unit")
DATA_PATHS = ("auto", "memory", "stream", "decode")


@dataclass(frozen=True)
class RunConfig:
    """One run. `n` is the Real World's train-set size; the Ideal World ignores it."""

    data: str = ""
    mode: str = "real"
    n: int | None = None
    steps: int = 39_000
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    schedule: str = "cosine"
    # The paper code steps its cosine once every 390 batches (one epoch of 50K); 1 = a smooth cosine.
    lr_update_every_steps: int = 1
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    label_smoothing: float = 0.0
    aug: str = "none"
    crop_padding: int = 4
    # resize-crop-flip: upscale to this size, then a random image_size crop (BiT-HyperRule: 160 -> 128).
    resize_size: int | None = None
    # Mixup (Zhang et al. 2018) with one lambda ~ Beta(alpha, alpha) per batch, as BiT fine-tuning does.
    mixup_alpha: float = 0.0
    image_size: int | None = None
    model: str = "preact-resnet18"
    width: int = 64
    mlp_widths: tuple[int, ...] = (128, 128, 128)
    pretrained: bool = False
    zero_init_head: bool = False
    seed: int = 0
    device: str = "auto"
    out_dir: str = ""
    train_split: str = "train"
    test_split: str = "test"
    test_samples: int | None = None
    # The paper code's schedule (after steps 1, 5, 9, ...; every 64 after 2,048): "log:64" spaces its
    # points 16-18% apart at 5K-20K steps, too coarse to place T(n).
    eval_schedule: str = "paper"
    eval_train_samples: int = 10_000
    # Train metrics (and so T(n)) on augmented train images, as the paper code scores its augmented train
    # loader (github.com/preetum/deep-bootstrap-code `inftrain/train.py`); False: the plain images.
    eval_train_aug: bool = True
    eval_batch_size: int = 1024
    fit_threshold: float = 0.01
    stop_at_fit: bool = False
    extra_test: tuple[str, ...] = ()
    allow_reuse: bool = False
    precision: str = "auto"
    input_range: str = "signed"
    compile: bool = False
    data_path: str = "auto"
    num_workers: int = 4
    checkpoint_every_steps: int = 2000
    # The datasets' content hashes (Manifest.data_sha256 of the train data, then each extra test set), filled
    # in by run_training: a dataset rebuilt with other bytes at the same path makes it another run.
    data_hashes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainError(
                f"config has unknown fields {unknown}; it was written by another version of "
                "the trainer: start a new run folder or pass --overwrite"
            )
        tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
        values: dict[str, Any] = {k: tuple(v) if k in tuples and v is not None else v for k, v in data.items()}
        return cls(**values)


# Fields that do not change what a run computes: a run folder may be resumed with other values.
_NOT_IDENTITY = ("out_dir", "device", "num_workers", "checkpoint_every_steps")


def identity_dict(cfg: RunConfig) -> dict[str, Any]:
    """The fields that define the run's result (the Ideal World has no n, so n is left out there)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IDENTITY}
    if cfg.data_hashes:  # the datasets are known by their manifests' hashes: `ds`, `./ds`, a URL of it are one
        d.pop("data")
        d["extra_test"] = [parse_extra_test(spec)[0] for spec in cfg.extra_test]  # names: they name metrics
    if cfg.mode == "ideal":
        d.pop("n")
    return d


def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha256(json.dumps(identity_dict(cfg), sort_keys=True).encode()).hexdigest()[:16]


# The paper code's CIFAR-5m sweep (github.com/preetum/deep-bootstrap-code `inftrain/sample_sweep.json`):
# fp32, 10,000 test images (the first 10K of part 5), and its evaluation schedule (inftrain/train.py:
# every 4 steps before 1,024, every 8 before 2,048, then every 64), which places T(n) within 64 steps,
# a few percent of the T(n) of n >= 5K. bf16 (--precision) and the full test split (--test-samples) stay
# available as flags.
_PAPER_CIFAR5M = dict(
    optimizer="sgd",
    lr=0.1,
    schedule="cosine",
    lr_update_every_steps=390,
    momentum=0.0,
    weight_decay=0.0,
    nesterov=False,
    batch_size=128,
    steps=39_000,
    aug="none",
    precision="fp32",
    test_samples=10_000,
    eval_schedule="paper",
)
# The paper code's DogBird run, its defaults as they are (github.com/preetum/deep-bootstrap-code
# `inftrain/train_imgnet.py`): torchvision ResNet-50 (`resnet50`, torchvision's init), SGD momentum 0.9,
# lr 0.1, no weight decay, batch 128, fp32, --nsamps 10,000, --epochs 10, so nbatches =
# int(10,000 / 128 x 10) = 781 and CosineAnnealingLR(T_max = epochs) stepped once per epoch of
# floor(10,000 / 128) = 78 batches; `--aug 0`: CenterCrop(224) of its 256-px copies for train and test
# (our `none`: a 0.875 centre crop resized to 224), no flip; ToTensor inputs in [0, 1], no normalisation;
# `--k 32`: evaluated after steps 1, 33, 65, ... The Ideal World draws 781 x 128 = 99,968 samples: 0.64 of
# one pass over the ~155K DogBird train pool, so no sample is reused. Ten epochs of 10K images from
# scratch are not expected to fit the train set (1% train error), so T(n) is usually undefined and the
# reports read the worlds at the end (train/PRESETS.md).
_PAPER_DOGBIRD = dict(
    optimizer="sgd",
    lr=0.1,
    schedule="cosine",
    lr_update_every_steps=78,
    momentum=0.9,
    weight_decay=0.0,
    batch_size=128,
    steps=781,
    image_size=224,
    model="resnet50",
    aug="none",
    precision="fp32",
    input_range="unit",
    eval_schedule="after:32",
)
# BiT-HyperRule for CIFAR-10-sized sets (github.com/google-research/big_transfer `bit_hyperrule.py`,
# `train.py`): upscale to 160, random crop 128 + flip (eval: resize to 128), SGD momentum 0.9 without
# weight decay, lr 0.003 at batch 512, linear warm-up over 500 steps, x0.1 at 3K/6K/9K, stop at 10K,
# mixup alpha 0.1, zero-initialised head; the model BiT-M-R152x2 (timm `resnetv2_152x2_bit.goog_in21k`).
_BIT_HYPERRULE = dict(
    model="timm:resnetv2_152x2_bit.goog_in21k",
    pretrained=True,
    zero_init_head=True,
    optimizer="sgd",
    lr=0.003,
    momentum=0.9,
    weight_decay=0.0,
    batch_size=512,
    steps=10_000,
    schedule="step",
    lr_milestones=(0.3, 0.6, 0.9),
    lr_gamma=0.1,
    warmup_steps=500,
    mixup_alpha=0.1,
    aug="resize-crop-flip",
    resize_size=160,
    image_size=128,
    eval_schedule="every:1000",
    eval_train_samples=2_000,
)
PRESETS: dict[str, dict[str, Any]] = {
    "paper-cifar5m": _PAPER_CIFAR5M,
    "paper-cifar5m-aug": {**_PAPER_CIFAR5M, "aug": "crop-flip"},
    "paper-dogbird": _PAPER_DOGBIRD,
    "bit-hyperrule": _BIT_HYPERRULE,
}
# `--seeds` of bootstrap and sweep under a preset, when not given: the paper sweep's 10 trials
# (`inftrain/sample_sweep.json`: "comment": [0, ..., 9]); train_imgnet.py has no sweep file, so DogBird
# takes the same number.
PRESET_SEEDS = {"paper-cifar5m": 10, "paper-cifar5m-aug": 10, "paper-dogbird": 10}


def default_seeds(preset: str | None) -> int:
    """bootstrap/sweep's number of seeds when --seeds is not given."""
    return PRESET_SEEDS.get(preset or "", 1)


# Presets whose lr is quoted at a batch size and scales linearly with it when only --batch-size is given
# (BiT's README: the same results at batch 128 with lr 0.001 ~ 0.003 x 128 / 512).
LR_REFERENCE_BATCH = {"bit-hyperrule": 512}


def apply_preset(name: str | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults <- preset <- overrides (explicit flags); a preset's lr follows a --batch-size given alone."""
    values: dict[str, Any] = {}
    if name:
        if name not in PRESETS:
            raise TrainError(f"--preset {name!r}: unknown preset; known presets: {', '.join(sorted(PRESETS))}")
        values.update(PRESETS[name])
        if name in LR_REFERENCE_BATCH and "batch_size" in overrides and "lr" not in overrides:
            values["lr"] = values["lr"] * overrides["batch_size"] / LR_REFERENCE_BATCH[name]
    values.update(overrides)
    return RunConfig(**values)


def parse_extra_test(spec: str) -> tuple[str, str]:
    """`name=path` or `path` -> (name, path); the name defaults to the dataset folder's basename."""
    head, sep, tail = spec.partition("=")
    if sep and head and _is_name(head):
        name, path = head, tail
    else:
        path = spec
        name = path.rstrip("/").rsplit("/", 1)[-1]
    if not name or not path or not _is_name(name):
        raise TrainError(
            f"--extra-test {spec!r}: give NAME=PATH or PATH with a name of letters, digits, "
            "'-', '_', '.' (e.g. cifar10=/data/cifar10-test)"
        )
    if name in ("test", "train"):
        raise TrainError(
            f"--extra-test {spec!r}: the name {name!r} is taken by the run's own sets; "
            "name it explicitly with NAME=PATH"
        )
    return name, path


def _is_name(text: str) -> bool:
    return all(c.isalnum() or c in "-_." for c in text)


def validate(cfg: RunConfig) -> None:
    """Raise TrainError on the first bad setting; cheap, runs before any data or model loads."""

    def need(ok: bool, flag: str, value: Any, rule: str) -> None:
        if not ok:
            raise TrainError(f"--{flag}={value}: {rule}")

    need(bool(cfg.data), "data", repr(cfg.data), "give a dataset folder or URL")
    need(bool(cfg.out_dir), "out", repr(cfg.out_dir), "give a run folder")
    need(cfg.mode in MODES, "mode", cfg.mode, f"must be one of {', '.join(MODES)}")
    if cfg.mode == "real":
        need(cfg.n is not None and cfg.n >= 1, "n", cfg.n, "the Real World needs a train-set size >= 1")
    need(cfg.steps >= 1, "steps", cfg.steps, "must be >= 1")
    need(cfg.batch_size >= 1, "batch-size", cfg.batch_size, "must be >= 1")
    need(cfg.lr > 0 and math.isfinite(cfg.lr), "lr", cfg.lr, "must be a finite number > 0")
    need(cfg.optimizer in OPTIMIZERS, "optimizer", cfg.optimizer, f"must be one of {', '.join(OPTIMIZERS)}")
    need(0 <= cfg.momentum < 1, "momentum", cfg.momentum, "must be in [0, 1)")
    need(0 <= cfg.weight_decay < math.inf, "weight-decay", cfg.weight_decay, "must be a finite number >= 0")
    need(
        not cfg.nesterov or (cfg.optimizer == "sgd" and cfg.momentum > 0),
        "nesterov",
        cfg.nesterov,
        "Nesterov needs --optimizer sgd and --momentum > 0",
    )
    need(cfg.schedule in SCHEDULES, "schedule", cfg.schedule, f"must be one of {', '.join(SCHEDULES)}")
    need(cfg.lr_update_every_steps >= 1, "lr-update-every-steps", cfg.lr_update_every_steps, "must be >= 1")
    need(
        all(0 < m < 1 for m in cfg.lr_milestones) and list(cfg.lr_milestones) == sorted(cfg.lr_milestones),
        "lr-milestones",
        ",".join(map(str, cfg.lr_milestones)),
        "fractions of the steps in (0, 1), increasing",
    )
    need(0 < cfg.lr_gamma <= 1, "lr-gamma", cfg.lr_gamma, "must be in (0, 1]")
    need(0 <= cfg.warmup_steps < cfg.steps, "warmup-steps", cfg.warmup_steps, "must be in [0, steps)")
    need(0 <= cfg.label_smoothing < 1, "label-smoothing", cfg.label_smoothing, "must be in [0, 1)")
    need(cfg.aug in AUGS, "aug", cfg.aug, f"must be one of {', '.join(AUGS)}")
    need(cfg.crop_padding >= 0, "crop-padding", cfg.crop_padding, "must be >= 0")
    need(0 <= cfg.mixup_alpha < math.inf, "mixup-alpha", cfg.mixup_alpha, "must be a finite number >= 0 (0 = off)")
    if cfg.aug == "resize-crop-flip":
        need(
            cfg.image_size is not None and cfg.resize_size is not None and cfg.resize_size >= cfg.image_size,
            "resize-size",
            cfg.resize_size,
            "--aug resize-crop-flip needs --image-size and --resize-size >= it (BiT: 160 and 128)",
        )
    need(cfg.image_size is None or cfg.image_size >= 1, "image-size", cfg.image_size, "must be >= 1")
    need(bool(cfg.model), "model", repr(cfg.model), "give a model name")
    need(cfg.width >= 1, "width", cfg.width, "must be >= 1")
    need(
        len(cfg.mlp_widths) >= 1 and all(w >= 1 for w in cfg.mlp_widths),
        "mlp-widths",
        ",".join(map(str, cfg.mlp_widths)),
        "one or more widths >= 1, e.g. 2048,2048,2048",
    )
    need(cfg.test_samples is None or cfg.test_samples >= 1, "test-samples", cfg.test_samples, "must be >= 1")
    need(cfg.eval_train_samples >= 1, "eval-train-samples", cfg.eval_train_samples, "must be >= 1")
    need(cfg.eval_batch_size >= 1, "eval-batch-size", cfg.eval_batch_size, "must be >= 1")
    need(0 <= cfg.fit_threshold <= 1, "fit-threshold", cfg.fit_threshold, "must be in [0, 1]")
    need(cfg.input_range in INPUT_RANGES, "input-range", cfg.input_range, f"must be one of {', '.join(INPUT_RANGES)}")
    need(cfg.precision in PRECISIONS, "precision", cfg.precision, f"must be one of {', '.join(PRECISIONS)}")
    need(cfg.data_path in DATA_PATHS, "data-path", cfg.data_path, f"must be one of {', '.join(DATA_PATHS)}")
    need(
        cfg.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", cfg.device) is not None,
        "device",
        cfg.device,
        "use auto, cpu, cuda or cuda:N",
    )
    need(cfg.num_workers >= 0, "num-workers", cfg.num_workers, "must be >= 0")
    need(cfg.checkpoint_every_steps >= 1, "checkpoint-every-steps", cfg.checkpoint_every_steps, "must be >= 1")
    parse_eval_schedule(cfg.eval_schedule, cfg.steps)
    names = [parse_extra_test(s)[0] for s in cfg.extra_test]
    need(
        len(names) == len(set(names)),
        "extra-test",
        ",".join(cfg.extra_test),
        "two extra test sets share a name; name them with NAME=PATH",
    )
    if cfg.model.startswith("timm:"):
        need(len(cfg.model) > 5, "model", cfg.model, "give a timm model name after 'timm:'")
    else:
        # Deferred: models imports torch (1.5 s here); validation runs before --dry-run and must stay cheap.
        from train.core.models import known_models

        need(
            cfg.model in known_models(),
            "model",
            cfg.model,
            f"unknown model; known: {', '.join(known_models())}, or timm:NAME for any timm model",
        )
        need(not cfg.pretrained, "pretrained", cfg.pretrained, "only timm:NAME models have pretrained weights")
    need(
        cfg.data_path != "decode" or cfg.aug in ("none", "flip", "rrc-flip"),
        "aug",
        cfg.aug,
        "--data-path decode crops while decoding: use none, flip or rrc-flip",
    )
