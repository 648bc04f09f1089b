"""Real World vs Ideal World trainer (Deep Bootstrap, Nakkiran et al. 2021) on `shards` datasets.

    python -m train run --data DATASET --mode real --n 50000 --preset paper-cifar5m --out out/runs/real-50k
    python -m train run --data DATASET --mode ideal --preset paper-cifar5m --out out/runs/ideal

Subpackages, each importing only those listed before it: `core` (config, schedule, samplers, models,
augmentation, metrics, T(n), packing K models into one), `data` (datasets, resident cache, batch sources,
streaming, per-batch JPEG decoding), `run` (the loop, packed runs and the run folder), `labeler` (fine-tune
a timm classifier, export it in timm's format, measure it), `reporting` (results, statistics, plots,
reports), `experiments` (bootstrap, sweep) and
`cli`. From Python: `train.run.loop.run_training(RunConfig(...))` runs one run and returns its summary.
Torch is imported only by the modules that need it, so `import train` stays fast.
"""
from shards.version import __version__  # noqa: F401 (re-exported: one version for the whole toolkit)
from train.core.config import RunConfig
from train.errors import TrainError

__all__ = ["TrainError", "RunConfig"]
