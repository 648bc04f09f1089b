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

import importlib
from typing import Any

from shards.version import __version__
from train.core.config import PRESETS, RunConfig, apply_preset, config_hash
from train.errors import TrainError

_LAZY = {  # name -> module: these import torch
    "run_training": "train.run.loop", "bootstrap": "train.experiments.bootstrap", "sweep": "train.experiments.sweep",
    "world_configs": "train.experiments.bootstrap",
    "finetune": "train.labeler.finetune", "evaluate_classifier": "train.labeler.evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'train' has no attribute {name!r}")


__all__ = ["PRESETS", "RunConfig", "TrainError", "__version__", "apply_preset", "config_hash", *_LAZY]
