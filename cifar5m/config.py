"""The `generate` command's settings: one frozen dataclass, the sampler presets, and their checks.

Defaults reproduce the paper's CIFAR-5m: 5,000,000 train and 1,000,000 test images from the CIFAR-10
DDPM with 1000-step ancestral sampling (github.com/preetum/cifar5m README; the default of Ho et al.'s
DDPM code), in shards of 10,000.
Only what decides the bytes of the dataset goes into `dataset_config()` (and so into the config hash a
resumed run must match). That includes the batch size and `--compile`: the noise of an image does not
depend on them, but bf16 arithmetic does (measured on an H200: batch 256 vs 4 x 64 changed 0.5% of
pixel values), so a resume with another batch size is refused rather than mixing numerics. How the work
is spread (device count, Ray, shard range) does not change the bytes and is not part of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cifar5m.errors import Cifar5mError
from shards.card import License
from shards.manifest import MIN_SHARDS, shard_size

# The diffusers port of Ho et al.'s CIFAR-10 DDPM. It holds the non-EMA weights (FID ~12.4 at 1000
# steps against ~3.2 for the EMA ones, per the discussion on its Hub model page): pass a pipeline folder
# converted from the EMA checkpoint as --model for the better generator.
DEFAULT_MODEL = "google/ddpm-cifar10-32"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Version of the per-image noise scheme (cifar5m/noise.py): part of the dataset identity.
NOISE_SCHEME = "lowbias32x2-erfinv-v1"
DTYPES = ("auto", "fp32", "bf16", "fp16")
# A plan of more shards than this is a typo (--shard-size 1), refused before any work: each shard is a file
# and a stats file, and planning lists them all. CIFAR-5m at the default 10,000 per shard is 600.
MAX_SHARDS = 100_000
CONFIDENCE_BINS = 20  # histogram of max_prob over [0, 1] kept per shard, summed for the report
# torch.compile's modes (pytorch.org/docs/stable/generated/torch.compile.html); "reduce-overhead" and
# "max-autotune" replay the UNet as CUDA graphs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class SamplerPreset:
    """A diffusers scheduler and the settings that make it a sampler for a DDPM-trained UNet."""

    scheduler_class: str
    default_steps: int
    scheduler_kwargs: tuple[tuple[str, object], ...] = ()
    ancestral: bool = False  # draws fresh noise at every step (cifar5m/noise.py gives it per image)
    about: str = ""


PRESETS = {
    "ddpm": SamplerPreset(
        "DDPMScheduler",
        1000,
        ancestral=True,
        about="ancestral, all 1000 training steps: the faithful CIFAR-5m setting (slow)",
    ),
    # eta = 0 is the deterministic DDIM of Song et al. 2021 (FID 4.16 at 100 steps, DDIM paper Table 1).
    "ddim": SamplerPreset("DDIMScheduler", 100, about="deterministic (eta 0), 100 steps"),
    "dpmpp": SamplerPreset(
        "DPMSolverMultistepScheduler",
        20,
        (("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
        about="DPM-Solver++ (2M), 20 steps: fastest",
    ),
}


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `python -m cifar5m generate` was asked to do, resolved and checked."""

    out_dir: str
    labeler: str | None = None
    labeler_checkpoint: str | None = None
    class_names: tuple[str, ...] | None = None  # None: the labeler's label_names, else CIFAR-10's
    model: str = DEFAULT_MODEL
    sampler: str = "ddpm"
    steps: int | None = None  # None: the preset's default (see with_model_steps)
    train: int = 5_000_000
    test: int = 1_000_000
    samples_per_shard: int = 10_000
    min_shards: int = MIN_SHARDS  # per split (shards.manifest.MIN_SHARDS)
    seed: int = 0
    # Measured on an H200 (bench/gpu_sampler.py, compiled bf16 CIFAR-10 UNet): 17.5K UNet evals/s at batch
    # 256, 20.3K at 1024, 20.7K at 4096. 1000 gets ~98% of that and divides the 10,000-image shards, so
    # a compiled UNet sees one batch shape (a partial last batch would compile again).
    batch_size: int = 1000
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    compile_mode: str = "default"  # with compile: torch.compile's mode (COMPILE_MODES)
    shard_range: tuple[int, int] | None = None
    workers: int = 1  # local worker processes (cifar5m/runners/processes.py); not part of the bytes
    ray: bool = False
    ray_address: str | None = None
    overwrite: bool = False
    dry_run: bool = False
    labeler_eval: str | None = None  # a real labelled dataset to measure the labeler on first
    min_labeler_accuracy: float | None = None
    license: License = License()  # the card's licence of the generated data (--license)

    @property
    def preset(self) -> SamplerPreset:
        return PRESETS[self.sampler]

    def validate(self) -> GenerateConfig:
        """Check every setting that needs no model; return the config with defaults filled in."""
        if self.sampler not in PRESETS:
            raise Cifar5mError(f"--sampler {self.sampler!r}: unknown; choose one of {', '.join(PRESETS)}")
        if not self.labeler:
            raise Cifar5mError(
                "--labeler is required: a timm classifier with one output per class (`make labeler` fine-tunes "
                "BiT-M-R152x2 on CIFAR-10 into out/labeler), "
                "e.g. --labeler hf-hub:ORG/NAME, --labeler local-dir:/path/to/timm-model, or a timm "
                "name with --labeler-checkpoint FILE"
            )
        for flag, value, low in [
            ("--train", self.train, 0),
            ("--test", self.test, 0),
            ("--shard-size", self.samples_per_shard, 1),
            ("--min-shards", self.min_shards, 1),
            ("--batch-size", self.batch_size, 1),
            ("--seed", self.seed, 0),
            ("--workers", self.workers, 1),
        ]:
            if value < low:
                raise Cifar5mError(f"{flag}={value}: must be >= {low}")
        if self.train + self.test == 0:
            raise Cifar5mError("--train 0 --test 0: nothing to generate; give at least one image")
        if self.shard_count() > MAX_SHARDS:
            raise Cifar5mError(
                f"--train {self.train} --test {self.test} at --shard-size {self.samples_per_shard}: "
                f"{self.shard_count():,} shards, more than {MAX_SHARDS:,} (a file each); use a "
                "larger --shard-size, e.g. the default 10000"
            )
        if self.steps is not None and self.steps < 1:
            raise Cifar5mError(f"--steps={self.steps}: must be >= 1")
        if self.dtype not in DTYPES:
            raise Cifar5mError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise Cifar5mError(f"--compile-mode {self.compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")
        if self.compile_mode != "default" and not self.compile:
            raise Cifar5mError(
                f"compile_mode={self.compile_mode!r} without compile: set compile=True (the CLI's --compile-mode does)"
            )
        if self.class_names is not None:
            if len(self.class_names) < 2 or any(not n.strip() for n in self.class_names):
                raise Cifar5mError(
                    f"--class-names {','.join(self.class_names)!r}: give at least two non-empty "
                    "names separated by commas, e.g. --class-names cat,dog"
                )
            if len(set(self.class_names)) != len(self.class_names):
                raise Cifar5mError(f"--class-names {','.join(self.class_names)!r}: names must be distinct")
        if self.shard_range and self.shard_range[0] >= self.shard_count():
            a, b = self.shard_range
            raise Cifar5mError(
                f"--shards {a}:{b}: this dataset has {self.shard_count()} shards (positions 0.."
                f"{self.shard_count() - 1}, train shards first); nothing would be made"
            )
        if self.ray and self.workers > 1:
            raise Cifar5mError(
                f"--workers {self.workers} with --ray: Ray starts its own workers (one per GPU or "
                "CPU slot); drop --workers"
            )
        if self.min_labeler_accuracy is not None and not (self.labeler_eval and 0 < self.min_labeler_accuracy <= 1):
            raise Cifar5mError(
                f"--min-labeler-accuracy {self.min_labeler_accuracy}: needs --labeler-eval DATASET "
                "and a fraction in (0, 1], e.g. 0.95"
            )
        if self.ray and self.device not in ("auto",):
            raise Cifar5mError(
                f"--device {self.device} with --ray: each Ray actor uses its own GPU (or CPU); leave --device at auto"
            )
        return self

    def with_model_steps(self, train_steps: int) -> GenerateConfig:
        """Fill in the preset's step count: ddpm takes every training timestep, the others their default."""
        if self.steps is not None:
            return self
        default = train_steps if self.preset.ancestral else min(self.preset.default_steps, train_steps)
        return dataclasses.replace(self, steps=default)

    def shard_count(self) -> int:
        return sum(
            -(-count // shard_size(count, self.samples_per_shard, self.min_shards)) for count in self.splits().values()
        )

    def compile_hash_value(self) -> bool | str:
        """`compile` as hashed: True/False as before modes existed (datasets made then keep their hash),
        the mode's name for another mode (max-autotune may pick other kernels, so other rounding)."""
        return self.compile if self.compile_mode == "default" else self.compile_mode

    def splits(self) -> dict[str, int]:
        return {name: count for name, count in (("train", self.train), ("test", self.test)) if count > 0}

    def dataset_config(self, model_name: str, labeler_name: str, dtype: str) -> dict:
        """What decides the bytes of every sample: the config hash a resumed run must match. The names are
        portable (a Hub id, a folder's own name); RunPlan adds what the weights are."""
        return {
            "generator": {
                "model": model_name,
                "sampler": self.sampler,
                "steps": self.steps,
                "scheduler_kwargs": dict(self.preset.scheduler_kwargs),
                "dtype": dtype,
                "noise": NOISE_SCHEME,
                "seed": self.seed,
                "batch_size": self.batch_size,
                "compile": self.compile_hash_value(),
            },
            "labeler": {
                "model": labeler_name,
                "checkpoint": Path(self.labeler_checkpoint).name if self.labeler_checkpoint else None,
            },
        }


def parse_shard_range(text: str) -> tuple[int, int]:
    """`A:B` -> (A, B): shard positions [A, B) over all splits, train shards first."""
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        a, b = int(start), int(stop)
    except ValueError:
        raise Cifar5mError(
            f"--shards {text!r}: write it as A:B (shard positions A..B-1, train shards first), e.g. --shards 0:100"
        ) from None
    if not 0 <= a < b:
        raise Cifar5mError(f"--shards {text}: need 0 <= A < B")
    return a, b


def parse_class_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(","))
