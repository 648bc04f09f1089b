"""The trainer's flags, shared by `run`, `bootstrap` and `sweep`: `add_run_flags(parser)` adds every
trainer setting, `add_control_flags(parser)` the run-folder controls, and `config_from_args(args,
**overrides)` builds the RunConfig (defaults <- --preset or --config FILE <- explicit flags <- overrides). Every flag
defaults to None here, so "not given" is distinguishable from a default value.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from shards.cachedir import CACHE_ENV
from shards.cliargs import add_overwrite
from shards.entry import RUNS_ROOT
from shards.jsonio import read_json_object
from train.core.config import (
    AUGS,
    DATA_PATHS,
    INPUT_RANGES,
    MODES,
    OPTIMIZERS,
    PRECISIONS,
    PRESETS,
    SCHEDULES,
    RunConfig,
    apply_preset,
)
from train.run import runfolder


def _trackers(text: str) -> tuple[str, ...]:
    from train.run.tracking import parse_trackers  # light: the trackers' packages load only when logging

    return parse_trackers(text)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}


def _shown(value: object) -> str:
    """A RunConfig default as a user types it: 39000, 0.5,0.75."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _flag(group, name: str, help: str, **kw) -> None:
    """A flag defaulting to None ("not given"); `{default}` in its help is RunConfig's default."""
    field = kw.get("dest", name.replace("-", "_"))
    help = help.format(default=_shown(DEFAULTS.get(field)))
    group.add_argument(f"--{name}", default=None, help=help, **kw)


def _add_data_flags(g) -> None:
    _flag(g, "data", "dataset folder, http(s):// URL or hf://datasets/ORG/NAME (required)")
    _flag(g, "mode", "real: train on a seeded subset of n; ideal: fresh samples every step", choices=MODES)
    # --train-size: torchrun's own parser takes `--n` for an ambiguous abbreviation of --nnodes/--nproc-per-node
    g.add_argument(
        "--n",
        "--train-size",
        dest="n",
        type=int,
        default=None,
        help="Real World train-set size (ignored by the Ideal World); under torchrun write --train-size",
    )
    _flag(g, "train-split", "split forming the train pool (default {default})")
    _flag(g, "test-split", "split evaluated as the test set (default {default})")
    _flag(g, "test-samples", "evaluate only the first N test samples (the paper: 10,000)", type=int)
    _flag(
        g,
        "extra-test",
        "another dataset (folder or URL) whose test split is evaluated too; NAME=PATH to "
        "name it (default: the folder's name); repeatable",
        action="append",
    )
    _flag(
        g,
        "data-path",
        "memory: decoded cache on the GPU/pinned RAM; stream: read shards as they are; decode: "
        "keep encoded images, decode and crop each batch (GPU, else CPU workers); auto decodes variable-size "
        "images and streams an Ideal pool that fits nowhere (default {default})",
        choices=DATA_PATHS,
    )
    _flag(g, "num-workers", "streaming reader / CPU decoder processes (default {default})", type=int)
    _flag(
        g,
        "allow-reuse",
        "let the Ideal World make more than one pass over its pool (passes are reported)",
        action=argparse.BooleanOptionalAction,
    )


def _add_optim_flags(g) -> None:
    _flag(g, "steps", "optimizer steps (default {default})", type=int)
    _flag(g, "batch-size", "global batch size, split over DDP ranks (default {default})", type=int)
    _flag(g, "lr", "peak learning rate (default {default})", type=float)
    _flag(g, "optimizer", "default {default}", choices=OPTIMIZERS)
    _flag(g, "momentum", "SGD momentum (default {default}, as in the paper's CIFAR-5m runs)", type=float)
    _flag(g, "weight-decay", "default {default}", type=float)
    _flag(g, "nesterov", "Nesterov momentum (SGD)", action=argparse.BooleanOptionalAction)
    _flag(g, "schedule", "learning-rate schedule over the total steps (default {default})", choices=SCHEDULES)
    _flag(g, "lr-update-every-steps", "update the lr every K steps (paper preset: 390) (default {default})", type=int)
    _flag(g, "lr-milestones", "step schedule: fractions of the steps (default {default})", type=_floats)
    _flag(g, "lr-gamma", "step schedule: factor at each milestone (default {default})", type=float)
    _flag(g, "warmup-steps", "linear warm-up steps (default {default})", type=int)
    _flag(g, "label-smoothing", "default {default} (off)", type=float)
    _flag(g, "aug", "augmentation on the GPU (default {default})", choices=AUGS)
    _flag(g, "crop-padding", "zero padding of crop and crop-flip (default {default})", type=int)
    _flag(g, "resize-size", "resize-crop-flip: resize to this before the random --image-size crop (BiT: 160)", type=int)
    _flag(g, "mixup-alpha", "mixup with lambda ~ Beta(a, a) per batch (default {default}: off; BiT: 0.1)", type=float)


def _add_model_flags(g) -> None:
    _flag(g, "model", "preact-resnet18, mcnn, vgg11-bn, mlp or timm:NAME (default {default})")
    _flag(g, "width", "base width of preact-resnet18/mcnn/vgg11-bn (default {default})", type=int)
    _flag(g, "mlp-widths", "hidden widths of mlp, e.g. 2048,2048,2048 (default {default})", type=_ints)
    _flag(g, "pretrained", "load timm's pretrained weights (timm:NAME only)", action=argparse.BooleanOptionalAction)
    _flag(g, "zero-init-head", "start from a zero classifier (BiT fine-tuning)", action=argparse.BooleanOptionalAction)
    _flag(g, "image-size", "model input size: eval centre-crops/resizes to it (default: the data's size)", type=int)
    _flag(g, "seed", "seed of the subset, data order, init and augmentation (default {default})", type=int)
    _flag(g, "device", "auto (cuda when present), cpu, cuda or cuda:N (default {default})")
    _flag(g, "precision", "auto = bf16 autocast on CUDA, fp32 on CPU", choices=PRECISIONS)
    _flag(
        g,
        "input-range",
        "the model's inputs: signed = [-1, 1] (train.py, default), unit = [0, 1] (train_imgnet.py)",
        choices=INPUT_RANGES,
    )
    _flag(g, "compile", "torch.compile the model", action=argparse.BooleanOptionalAction)


def _add_eval_flags(g) -> None:
    _flag(g, "out", "run folder (default out/runs/MODE[-nN]-MODEL-seedS)", dest="out_dir")
    _flag(
        g,
        "eval-schedule",
        "when to evaluate: paper (after steps 1, 5, 9, ...: the paper code's), log:POINTS, "
        "every:K, after:K (steps 1, 1+K, ...), steps:A,B; join with + (default {default})",
    )
    _flag(g, "eval-train-samples", "size of the fixed train-evaluation subset (default {default})", type=int)
    _flag(
        g,
        "eval-train-aug",
        "train metrics (and T(n)) on augmented train images, as the paper code "
        "(default); --no-eval-train-aug: on the plain images",
        action=argparse.BooleanOptionalAction,
    )
    _flag(g, "eval-batch-size", "default {default}", type=int)
    _flag(g, "fit-threshold", "T(n) = first evaluated step with train error <= this (default {default})", type=float)
    _flag(g, "stop-at-fit", "stop at T(n)", action=argparse.BooleanOptionalAction)
    _flag(g, "checkpoint-every-steps", "default {default}", type=int)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Every trainer setting as a flag (all default None), plus --preset."""
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--preset", default=None, choices=sorted(PRESETS), help="paper settings; explicit flags override them"
    )
    start.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="start from a saved config.json (or a run folder holding one); explicit flags override it",
    )
    _add_data_flags(parser.add_argument_group("data"))
    _add_optim_flags(parser.add_argument_group("optimisation"))
    _add_model_flags(parser.add_argument_group("model and device"))
    _add_eval_flags(parser.add_argument_group("evaluation and outputs"))


def add_control_flags(parser: argparse.ArgumentParser) -> None:
    """How to treat the run folder, and output verbosity."""
    g = parser.add_argument_group("run control")
    g.add_argument("--resume", action="store_true", help="continue an unfinished run from its checkpoint")
    add_overwrite(g, "a run folder holding another config")
    g.add_argument("--dry-run", action="store_true", help="print the resolved config and stop")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cache_flag(g)
    add_log_to_flag(g)


def add_log_to_flag(g) -> None:
    g.add_argument(
        "--log-to",
        type=_trackers,
        default=(),
        metavar="TRACKERS",
        help="when the run ends, copy its config, metrics at every evaluation and T(n) into "
        "wandb, tensorboard and/or mlflow (comma-separated; offline by default; metrics.jsonl stays "
        "the record)",
    )


class _SetCacheRoot(argparse.Action):
    """--cache-dir DIR is DEEPBOOT_CACHE=DIR: one setting that this process, its data workers and the
    torchrun ranks launched with the same flags all see."""

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[CACHE_ENV] = os.path.abspath(values)
        setattr(namespace, self.dest, values)


def add_cache_flag(g) -> None:
    g.add_argument(
        "--cache-dir",
        action=_SetCacheRoot,
        metavar="DIR",
        help=f"the user cache for decoded datasets and downloads, never inside a dataset (default "
        f"${CACHE_ENV}, else $XDG_CACHE_HOME/deep-bootstrap, else ~/.cache/deep-bootstrap)",
    )


def default_out_dir(cfg: RunConfig) -> str:
    size = f"-n{cfg.n}" if cfg.mode == "real" else ""
    return os.path.join(RUNS_ROOT, f"{cfg.mode}{size}-{cfg.model.replace(':', '-').replace('/', '-')}-seed{cfg.seed}")


def saved_config(path: str) -> dict[str, Any]:
    """The settings of a saved config.json (or of a run folder's), less the dataset hashes a run fills in."""
    file = Path(path) / runfolder.CONFIG if Path(path).is_dir() else Path(path)
    data = read_json_object(
        file,
        fix="give a config.json written by `python -m train`",
        expected="a trainer config (a JSON object of settings)",
    )
    values = RunConfig.from_dict(data).to_dict()
    del values["data_hashes"]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def config_from_args(args: argparse.Namespace, **overrides) -> RunConfig:
    """RunConfig from parsed flags: defaults <- preset or saved --config <- flags given <- overrides."""
    values = saved_config(args.config) if getattr(args, "config", None) else {}
    for f in dataclasses.fields(RunConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    cfg = apply_preset(getattr(args, "preset", None), values)
    if not cfg.out_dir:
        cfg = dataclasses.replace(cfg, out_dir=default_out_dir(cfg))
    return cfg
