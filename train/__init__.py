"""Real World vs Ideal World trainer (Deep Bootstrap, Nakkiran et al. 2021) on `shards` datasets.

    python -m train run --data DATASET --mode real --n 50000 --preset paper-cifar5m --out out/runs/real-50k
    python -m train run --data DATASET --mode ideal --preset paper-cifar5m --out out/runs/ideal

Subpackages, each importing only those listed before it: `core` (config, schedule, samplers, models,
augmentation, metrics, T(n), packing K models into one), `data` (datasets, resident cache, batch sources,
streaming, per-batch JPEG decoding), `run` (the loop, packed runs and the run folder), `labeler` (fine-tune
a timm classifier, export it in timm's format, measure it), `reporting` (results, statistics, plots,
reports), `experiments` (bootstrap, sweep) and `cli`. The entry calls, used by the CLI and the demo:

    from train import RunConfig, bootstrap, run_training, sweep
    summary = run_training(RunConfig(data="out/cifar5m", mode="real", n=50_000, out_dir="out/runs/real"))

Torch is imported only when an entry call is first used, so `import train` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shards.lazy import lazy_attributes
from shards.version import __version__
from train.core.config import PRESETS, RunConfig, apply_preset, config_hash
from train.core.schedule import parse_eval_schedule
from train.errors import TrainError
from train.reporting.margin import Margin

_LAZY = {  # name -> module: these import torch (the entry calls) or scipy (the reports' statistics)
    "run_training": "train.run.loop",
    "bootstrap": "train.experiments.bootstrap",
    "sweep": "train.experiments.sweep",
    "world_configs": "train.experiments.bootstrap",
    "finetune": "train.labeler.finetune",
    "TRAINING": "train.labeler.finetune",
    "evaluate_classifier": "train.labeler.evaluate",
    "render_bootstrap": "train.reporting.bootstrap_report",
    "format_headline": "train.reporting.render",
    "seeds_needed": "train.reporting.inference",
    "tost_power": "train.reporting.inference",
}

# The type checker and IDEs see the real signatures (`X as X`: re-exported); at run time __getattr__ imports them.
if TYPE_CHECKING:
    from train.experiments.bootstrap import bootstrap as bootstrap
    from train.experiments.bootstrap import world_configs as world_configs
    from train.experiments.sweep import sweep as sweep
    from train.labeler.evaluate import evaluate_classifier as evaluate_classifier
    from train.labeler.finetune import TRAINING as TRAINING
    from train.labeler.finetune import finetune as finetune
    from train.reporting.bootstrap_report import render_bootstrap as render_bootstrap
    from train.reporting.inference import seeds_needed as seeds_needed
    from train.reporting.inference import tost_power as tost_power
    from train.reporting.render import format_headline as format_headline
    from train.run.loop import run_training as run_training


__getattr__ = lazy_attributes("train", _LAZY)


__all__ = [
    "PRESETS",
    "Margin",
    "RunConfig",
    "TrainError",
    "__version__",
    "apply_preset",
    "config_hash",
    "parse_eval_schedule",
    *_LAZY,
]
