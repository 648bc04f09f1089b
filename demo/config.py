"""DemoConfig: every setting of `python -m demo run`, with its checks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from demo.data import DEFAULT_SPLIT_SEED
from demo.errors import DemoError

SHIPPED_MODELS = Path(__file__).resolve().parent / "models"  # package data: the committed models


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of `python -m demo run`."""

    out_dir: str = "out/demo"
    models_dir: str = str(SHIPPED_MODELS)
    split_seed: int = DEFAULT_SPLIT_SEED
    seed: int = 0
    # Generation: DPM-Solver++ at the step count the shipped model was measured with (metrics.json), on
    # `workers` processes (cifar5m/runners/processes.py). Measured on this 2-core machine: ~105 images/s per 1-thread
    # process, 202/s with two (nearly idle machine), so 46,000 images take ~3.8 min. The pool bounds the
    # bootstrap (below), so generation gets most of the time.
    train: int = 44_000
    test: int = 2_000
    samples_per_shard: int = 1_000  # the unit of resume: ~10 s of one worker
    gen_steps: int = 20
    gen_batch_size: int = 500
    # Bootstrap: the paper's CIFAR-5m optimiser (SGD lr 0.1, no momentum or weight decay, batch 128, cosine;
    # smooth here, as a run is 340 steps, not 39,000) and its 4-layer CNN (mcnn, width 64), no augmentation.
    # 340 x 128 = 43,520 draws <= the 44,000 pool, so the Ideal World never reuses a sample; that is ~44
    # epochs of the Real World's n = 1,000, which fitted it (train error <= 1%) by step 53-82 when measured.
    # ~65 s per run with 1 thread.
    n: int = 1_000
    steps: int = 340
    batch_size: int = 128
    model: str = "mcnn"
    width: int = 64
    lr: float = 0.1
    momentum: float = 0.0
    eval_points: int = 24
    quality_sizes: tuple[int, ...] = (500, 1000)
    device: str = "auto"
    overwrite: bool = False  # replace outputs made with other settings (the same settings are always reused)
    # Generation processes on CPU; None: one per core this process may use, at most 8 (each holds ~0.5 GB).
    workers: int | None = None
    # Torch threads of this process (labeler check, bootstrap). 1: on 2 shared cores mcnn trained at
    # 2,600-4,300 img/s with 1 thread and at 190-1,200 img/s with 2 (threads stalling on each other).
    threads: int = 1

    def validate(self) -> "DemoConfig":
        for flag, value, low in [("--train", self.train, 1), ("--test", self.test, 1),
                                 ("--shard-size", self.samples_per_shard, 1), ("--gen-steps", self.gen_steps, 1),
                                 ("--gen-batch-size", self.gen_batch_size, 1), ("--n", self.n, 1),
                                 ("--steps", self.steps, 1), ("--batch-size", self.batch_size, 1),
                                 ("--width", self.width, 1), ("--eval-points", self.eval_points, 2),
                                 ("--workers", self.cpu_workers, 1), ("--threads", self.threads, 1)]:
            if value < low:
                raise DemoError(f"{flag}={value}: must be >= {low}")
        if self.n > self.train:
            raise DemoError(f"--n={self.n:,}: larger than the synthetic train pool (--train={self.train:,}); "
                            "choose n <= --train")
        if self.steps * self.batch_size > self.train:
            raise DemoError(
                f"--steps={self.steps:,} x --batch-size={self.batch_size} = {self.steps * self.batch_size:,} "
                f"draws > --train={self.train:,}: the Ideal World would reuse samples; lower --steps or "
                f"--batch-size, or raise --train to at least {self.steps * self.batch_size:,}")
        return self

    @property
    def out(self) -> Path:
        return Path(self.out_dir)

    @property
    def cpu_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(cores, 8)
