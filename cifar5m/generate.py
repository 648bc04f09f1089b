"""Generation: plan a run, make one shard (sample -> uint8 -> label -> write), and the runners' frame.

    plan = plan_run(cfg.validate(), device_type="cuda")   # configs only: no weights loaded yet
    result = run_local(plan, progress=bar)                 # a runner from cifar5m/runners/

The unit of work is the shard: `ShardMaker.run_shard(spec)` depends only on the plan and the spec, so
it runs the same in this process, on local worker processes, in a Ray actor (cifar5m/runners/) or in a
Slurm array job (`--shards A:B`), and a retried or resumed shard comes out byte-identical. Image `index` of a split gets the seed
`shards.derive_seed(seed, split, index)`; its noise follows from that seed alone (noise.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from cifar5m.config import CIFAR10_CLASSES, CONFIDENCE_BINS, DEFAULT_MODEL, GenerateConfig
from cifar5m.errors import Cifar5mError
from cifar5m.label import Labeler, LabelerInfo, check_head, create_labeler_model, read_labeler_info
from cifar5m.labeler_eval import describe as describe_accuracy
from cifar5m.models import PipelineInfo, check_sampler, load_unet, resolve_pipeline
from cifar5m.sample import TORCH_DTYPES, Sampler, resolve_dtype
from shards import CardInfo, DatasetWriter, ShardStats, derive_seed
from shards.card import declared_license
from shards.runtime import resolve_device

log = logging.getLogger(__name__)

# Torch intra-op threads of every CPU generation, whatever the runner. CPU kernels split their sums by
# thread, so the float rounding (and a pixel here and there) depends on the thread count: one fixed count
# makes in-process, --workers and Ray runs byte-identical. 1 because the local-process runner gives
# each core its own process (cifar5m/runners/processes.py says why that is faster on a shared machine).
CPU_THREADS = 1


class Counter(Protocol):
    """What a shard maker reports images to (a worker process forwards them to its parent)."""

    def update(self, n: int) -> None: ...


class Progress(Counter, Protocol):
    """What runners report to: the CLI's progress bar, or nothing."""

    def start(self, total: int) -> None: ...


@dataclass(frozen=True)
class RunPlan:
    """A checked run: the config, the model and labeler configs, the class names and the dtype."""

    cfg: GenerateConfig
    pipeline: PipelineInfo
    labeler: LabelerInfo
    class_names: tuple[str, ...]
    dtype: str
    labeler_accuracy: dict | str = "not measured"  # cifar5m.labeler_eval: measured on --labeler-eval

    def dataset_config(self) -> dict[str, Any]:
        config = self.cfg.dataset_config(self.pipeline.name, self.labeler.name, self.dtype)
        # What the weights are, not where they lie: a resume over changed weights is refused.
        config["generator"]["weights"] = self.pipeline.weights.to_dict()
        config["labeler"]["weights"] = self.labeler.weights.to_dict()
        config["labeler"]["accuracy"] = self.labeler_accuracy
        return config

    def writer(self) -> DatasetWriter:
        return DatasetWriter(
            self.cfg.out_dir,
            self.dataset_config(),
            list(self.class_names),
            self.cfg.splits(),
            self.cfg.samples_per_shard,
            image_ext="png",
            card=self.card(),
            overwrite=self.cfg.overwrite,
            min_shards=self.cfg.min_shards,
        )

    def card(self):
        cfg = self.cfg
        notes = [
            "`json` fields: `seed` (the image's own seed; its noise follows from it), `index` (position in "
            "its split), `probs` (the labeler's probability per class, rounded to fp16 precision), "
            "`max_prob`; `cls` is the argmax.",
            f"Labeler accuracy measured before generating: {describe_accuracy(self.labeler_accuracy)}.",
            f"Labeler accuracy recorded with the labeler: {self.labeler.accuracy_note}."
            if self.labeler.accuracy_note
            else "Labeler accuracy: not recorded with the labeler; measure it (--labeler-eval) before relying on it.",
        ]
        if self.pipeline.source == DEFAULT_MODEL:
            notes.append(
                f"`{DEFAULT_MODEL}` holds the non-EMA DDPM weights (FID ~12.4 against ~3.2 for the "
                "EMA weights at 1000 steps); CIFAR-5m itself came from the original DDPM release."
            )
        notes.append(
            f"Licences of the inputs the images and labels derive from (check both before redistributing): "
            f"generator {model_license(self.pipeline.source, self.pipeline.path)}; labeler "
            f"{model_license(*_labeler_location(self.labeler.spec))}."
        )
        cifar = tuple(self.class_names) == CIFAR10_CLASSES
        return CardInfo(
            pretty_name="CIFAR-5m-like synthetic images" if cifar else "Synthetic labelled images",
            description=(
                f"Unconditional samples of the diffusion model `{self.pipeline.name}` "
                f"({_weights_note(self.pipeline.weights)}; {cfg.sampler}, {cfg.steps} steps, {self.dtype}, "
                f"seed {cfg.seed}), each labelled by the classifier `{self.labeler.name}` "
                f"({_weights_note(self.labeler.weights)}), made as CIFAR-5m was for the Deep "
                "Bootstrap paper (Nakkiran et al., ICLR 2021)."
            ),
            source_datasets=("cifar10",) if cifar else (),
            tags=("deep-bootstrap", "webdataset", "synthetic"),
            notes=tuple(notes),
            **cfg.license.card_fields(),
        )


def _weights_note(weights) -> str:
    """`revision 1a2b3c4d, files sha256 5e6f7a8b...` : enough to tell which weights made the dataset."""
    revision = f"revision {weights.revision}, " if weights.revision else ""
    return f"{revision}files sha256 {weights.sha256[:16]}"


def model_license(source: str, folder: str | None) -> str:
    """A model's licence as its own card declares it: read from a local folder, else its Hub page."""
    if folder and (Path(folder) / "README.md").is_file():
        return declared_license(folder)
    on_hub = source.count("/") == 1 and not Path(source).is_absolute()
    return f"not stated here: see huggingface.co/{source}" if on_hub else "not stated in its README.md"


def _labeler_location(spec: str) -> tuple[str, str | None]:
    """(Hub id or name, local folder or None) of a labeler spec."""
    kind, _, ident = spec.partition(":")
    return (ident, ident) if kind == "local-dir" else (ident if kind == "hf-hub" else spec, None)


def plan_run(cfg: GenerateConfig, device_type: str) -> RunPlan:
    """Resolve the model and labeler configs and check them together; loads no weights."""
    pipeline = resolve_pipeline(cfg.model)
    cfg = cfg.with_model_steps(int(pipeline.scheduler_config.get("num_train_timesteps", 1000)))
    check_sampler(pipeline, cfg.sampler, cfg.steps)
    labeler = read_labeler_info(cfg.labeler, cfg.labeler_checkpoint)
    class_names = cfg.class_names or labeler.label_names or CIFAR10_CLASSES
    check_head(labeler, class_names, cfg.labeler)
    return RunPlan(cfg, pipeline, labeler, tuple(class_names), resolve_dtype(cfg.dtype, device_type))


class ShardMaker:
    """Holds the sampler and the labeler on one device and makes whole shards."""

    def __init__(self, plan: RunPlan, device: str = "auto", writer: DatasetWriter | None = None):
        cfg = self.cfg = plan.cfg
        self.plan = plan
        self.device = resolve_device(device, Cifar5mError)
        self.sampler = Sampler(
            load_unet(plan.pipeline),
            plan.pipeline.scheduler_config,
            cfg.sampler,
            cfg.steps,
            self.device,
            plan.dtype,
            cfg.compile,
            cfg.compile_mode,
        )
        model = create_labeler_model(plan.labeler, len(plan.class_names))
        check_head(int(model.num_classes), plan.class_names, cfg.labeler)
        self.labeler = Labeler(model, self.device, TORCH_DTYPES[plan.dtype])
        self.writer = writer if writer is not None else plan.writer()
        log.info(
            "models loaded on %s (%s): images %s, labeler input %s",
            self.device,
            plan.dtype,
            "x".join(map(str, self.sampler.image_shape)),
            self.labeler.input_size,
        )

    def make_samples(self, spec, progress: Counter | None = None) -> tuple[list[dict], dict]:
        """The samples of one shard, in index order, and the shard's summary numbers."""
        samples, timing = [], {"sample_s": 0.0, "label_s": 0.0}
        for first in range(spec.first_index, spec.first_index + spec.count, self.cfg.batch_size):
            stop = min(first + self.cfg.batch_size, spec.first_index + spec.count)
            seeds = [derive_seed(self.cfg.seed, spec.split, i) for i in range(first, stop)]
            start = time.perf_counter()
            images = self.sampler.sample(seeds)
            _sync(self.device)
            middle = time.perf_counter()
            probs = self.labeler(images).cpu()
            timing["label_s"] += time.perf_counter() - middle
            timing["sample_s"] += middle - start
            samples += sample_dicts(images.cpu().numpy(), probs, seeds, first)
            if progress:
                progress.update(len(seeds))
        return samples, shard_extra(samples, timing, str(self.device), self.cfg.batch_size)

    def run_shard(self, spec, progress: Counter | None = None) -> ShardStats:
        samples, extra = self.make_samples(spec, progress)
        return self.writer.write_shard(spec, samples, extra)


@contextlib.contextmanager
def fixed_cpu_threads(device: torch.device):
    """Run the block with CPU_THREADS torch threads when `device` is the CPU; restore the count after."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_dicts(images: np.ndarray, probs: torch.Tensor, seeds: list[int], first_index: int) -> list[dict]:
    """One shard sample per image: the image, cls = argmax, and the fixed-schema json."""
    classes = probs.argmax(dim=1).tolist()
    rounded = probs.half().float().tolist()  # fp16 precision: 3 significant digits are plenty for a label
    return [
        {
            "image": image,
            "cls": cls,
            "json": {"seed": seed, "index": first_index + k, "probs": row, "max_prob": max(row)},
        }
        for k, (image, cls, row, seed) in enumerate(zip(images, classes, rounded, seeds))
    ]


def shard_extra(samples: list[dict], timing: dict, device: str, batch_size: int) -> dict:
    """Per-shard numbers kept in its stats file: confidence histogram and sum, timings, and how it was made.

    The batch size is recorded because it changes float rounding (not the images' seeds): with bf16 on a
    GPU about 0.5% of pixel values differ between batch sizes (bench/gpu_sampler.py).
    """
    max_probs = np.array([s["json"]["max_prob"] for s in samples], dtype=np.float64)
    hist = np.histogram(max_probs, bins=CONFIDENCE_BINS, range=(0.0, 1.0))[0]
    return {
        "max_prob_sum": float(max_probs.sum()),
        "max_prob_hist": hist.tolist(),
        "device": device,
        "batch_size": batch_size,
        **{k: round(v, 3) for k, v in timing.items()},
    }


@dataclass
class RunResult:
    """What one invocation did."""

    planned_shards: int
    pending_shards: int
    written: list[ShardStats] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    manifest: Any = None

    @property
    def images_written(self) -> int:
        return sum(s.samples for s in self.written)


def run_pending(plan: RunPlan, progress: Progress | None, make_shards) -> RunResult:
    """The frame every runner shares: prepare the folder, find the pending shards (within --shards),
    make them with `make_shards(writer, specs, result)`, then assemble the manifest if complete."""
    writer = plan.writer()
    writer.prepare()
    specs = writer.pending(plan.cfg.shard_range)
    result = RunResult(planned_shards=len(writer.plan()), pending_shards=len(specs))
    start = time.perf_counter()
    if progress:
        progress.start(sum(s.count for s in specs))
    if specs:
        make_shards(writer, specs, result)
    result.wall_s = time.perf_counter() - start
    result.manifest = writer.finalize()
    return result
