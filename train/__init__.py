"""Real World vs Ideal World trainer (Deep Bootstrap, Nakkiran et al. 2021) on `shards` datasets.

    python -m train run --data DATASET --mode real --n 50000 --preset paper-cifar5m --out runs/real-50k
    python -m train run --data DATASET --mode ideal --preset paper-cifar5m --out runs/ideal

From Python: `run_training(RunConfig(...))` (in `train.loop`) runs one run and returns its summary.
Torch and the data stack are imported only by the modules that need them, so `import train` stays fast.
"""
__version__ = "0.1.0"

from train.errors import TrainError  # noqa: E402
from train.config import RunConfig  # noqa: E402

__all__ = ["TrainError", "RunConfig", "run_training"]


def __getattr__(name):
    # run_training pulls in torch: import it only when asked for.
    if name == "run_training":
        from train.loop import run_training

        return run_training
    raise AttributeError(name)
