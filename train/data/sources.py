"""Everything a run reads, set up once: the sampler, the batch source and the resident evaluation sets.

    data = build_run_data(cfg, dist, device, progress=True)
    x_u8, y, idx = data.source.batch(step)           # this rank's slice of the global batch
    images, labels = data.source.train_eval(step)    # this rank's share of the train-eval set
    for s in data.eval_sets: ...                     # test split and extra test sets (this rank's share)

Under DDP every rank builds the same sampler (same seed: the same Real subset and the same Ideal order)
and takes rows [rank * b, (rank + 1) * b) of each global batch of B = b x world: the global stream is
exactly the single-device one. Evaluation sets are dealt round-robin to ranks and their sums added.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import shards
from shards.urls import is_url
from train.core import ddp
from train.core.config import RunConfig, parse_extra_test
from train.core.samplers import IdealSampler, RealSampler, check_pool
from train.data.datasets import (
    Dataset,
    TrainStore,
    cache_size,
    gpu_budget_bytes,
    host_budget_bytes,
    open_dataset,
    read_split,
    to_device,
)
from train.data.jpeg import JpegSource, read_encoded
from train.data.streaming import StreamSource, collect_rows
from train.errors import TrainError

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    name: str
    images: torch.Tensor  # uint8 NHWC, this rank's share, on the device
    labels: torch.Tensor


class MemorySource:
    """Batches gathered from a TrainStore by the sampler's indices (fast path)."""

    def __init__(self, sampler, store: TrainStore, batch_size: int, dist: ddp.Dist, eval_count: int):
        self.sampler, self.store, self.batch_size, self.dist = sampler, store, batch_size, dist
        self.per_rank = batch_size // dist.world
        rows = sampler.first_samples(eval_count)
        self.eval_rows = len(rows)
        self.keep, self.keep_labels = store.gather(rows[dist.rank :: dist.world])

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        start = self.dist.rank * self.per_rank
        idx = self.sampler.indices(step, self.batch_size)[start : start + self.per_rank]
        x, y = self.store.gather(idx)
        return x, y, idx

    def skip_to(self, step: int) -> None:
        """Nothing to do: the sampler is a function of the step."""

    def train_eval(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # The Ideal World evaluates only the part of its train-eval set already seen at this step.
        seen = self.eval_rows if self.sampler.kind == "real" else min(self.eval_rows, step * self.batch_size)
        count = len(range(self.dist.rank, seen, self.dist.world))
        return self.keep[:count], self.keep_labels[:count]


@dataclass
class RunData:
    sampler: RealSampler | IdealSampler
    source: MemorySource | StreamSource | JpegSource
    eval_sets: list[EvalSet]
    num_classes: int
    in_chans: int
    image_size: int
    # The train view for a source whose batches are already cropped to the model's input (else None:
    # the trainer's TrainAugment).
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None


def resolve_data_path(cfg: RunConfig, device: torch.device) -> RunConfig:
    """The config with `--data-path auto` made concrete (memory, stream or decode). It is recorded in
    config.json and in the run's identity: the Ideal World's sample order depends on the path, so runs that
    took different paths are different runs (not one config with two results), and a resume that would
    take another path is refused instead of switching mid-run."""
    if cfg.data_path != "auto":
        return cfg
    try:
        manifest = shards.load_manifest(cfg.data)  # a URL's manifest is read where it is
    except shards.ShardsError as exc:
        raise TrainError(str(exc)) from exc
    if manifest.image_shape is None:
        return dataclasses.replace(cfg, data_path="decode")
    return dataclasses.replace(cfg, data_path="stream" if _streams(cfg, manifest, device) else "memory")


def _streams(cfg: RunConfig, manifest: shards.Manifest, device: torch.device) -> bool:
    """`auto` streams only an Ideal World pool of a local dataset too big for both the GPU and host memory."""
    if cfg.mode == "real" or is_url(cfg.data) or cfg.train_split not in manifest.splits:
        return False
    need = manifest.splits[cfg.train_split].count * int(np.prod(manifest.image_shape))
    budget = max(gpu_budget_bytes(device), host_budget_bytes())
    log.info(
        "--data-path auto: the train pool takes %.2f GB, %.2f GB of memory is available: %s",
        need / 1e9,
        budget / 1e9,
        "stream" if need > budget else "memory",
    )
    return need > budget


def _test_split(ds: Dataset) -> str:
    """An extra test set's `test` split, or its only split."""
    splits = list(ds.manifest.splits)
    if "test" in splits:
        return "test"
    if len(splits) == 1:
        return splits[0]
    raise TrainError(
        f"{ds.location}: extra test set has no 'test' split and several others "
        f"({', '.join(splits)}); give a dataset with a test split"
    )


def decodes(cfg: RunConfig) -> bool:
    """Decode the train images per batch (the resolved path; `auto` picks it for variable-size images)."""
    return cfg.data_path == "decode"


def _check_sizes(cfg: RunConfig, ds: Dataset) -> None:
    """n against the pool, and the Ideal World's draws against it, before any cache is built."""
    pool = ds.split(cfg.train_split).count
    if cfg.mode == "real":
        RealSampler.check_n(cfg.n, pool)
    check_pool(cfg.mode, cfg.steps, cfg.batch_size, pool, cfg.allow_reuse)
    ds.split(cfg.test_split)


def _open_all(cfg: RunConfig, dist: ddp.Dist, stream: bool, progress: bool):
    """Open the train dataset and the extra test sets; rank 0 first checks hashes and builds caches."""

    def prepare(first: bool):
        try:
            ds = open_dataset(cfg.data, stream=stream, verify=first)
            _check_sizes(cfg, ds)
            extras = [
                (name, open_dataset(path, stream=stream, verify=first))
                for name, path in map(parse_extra_test, cfg.extra_test)
            ]
            if first and not stream:
                own = [cfg.test_split] if decodes(cfg) else [cfg.train_split, cfg.test_split]
                wanted = [(ds, split) for split in own] + [(d, _test_split(d)) for _, d in extras]
                for d, split in wanted:
                    d.split(split)
                    shards.load_split(d.root, split, size=cache_size(d, cfg.image_size), progress=progress)
            return ds, extras
        except shards.ShardsError as exc:
            raise TrainError(str(exc)) from exc

    if not dist.active:
        return prepare(first=True)

    def check_and_cache() -> None:  # run_on_main shares the return value: share nothing
        prepare(first=True)

    ddp.run_on_main(dist, check_and_cache)
    return prepare(first=False)


def _check_classes(ds: Dataset, class_names: list[str]) -> None:
    """An evaluation set's label k must name the train set's class k: a permuted order scores wrongly."""
    names = list(ds.manifest.class_names)
    if names == list(class_names):
        return
    at = next((i for i, (a, b) in enumerate(zip(names, class_names)) if a != b), min(len(names), len(class_names)))
    raise TrainError(
        f"{ds.location}: classes {names} are not the train set's {list(class_names)} (first "
        f"difference at label {at}); an extra test set must name the same classes in the same order: "
        "rebuild it with the train set's class names"
    )


def _eval_set(
    name: str,
    ds: Dataset,
    split: str,
    cfg: RunConfig,
    dist: ddp.Dist,
    device: torch.device,
    stream: bool,
    limit: int | None,
    channels: int,
    class_names: list[str],
) -> EvalSet:
    if ds.channels != channels:
        raise TrainError(
            f"{ds.location}: {ds.channels}-channel images, the train set has {channels}; "
            "evaluate on a dataset with the same channels"
        )
    _check_classes(ds, class_names)
    images, labels = read_split(ds, split, cache_size(ds, cfg.image_size), limit, stream)
    share = slice(dist.rank, None, dist.world)
    x, y = to_device(images[share], labels[share], device)
    log.info("eval set %s: %s samples of %s/%s", name, f"{len(labels):,}", ds.name, split)
    return EvalSet(name, x, y)


def _train_source(cfg: RunConfig, ds: Dataset, sampler, dist: ddp.Dist, device: torch.device, stream: bool):
    per_rank = cfg.batch_size // dist.world
    if decodes(cfg):
        if cfg.aug not in ("none", "flip", "rrc-flip") or cfg.image_size is None:
            raise TrainError(
                f"{ds.location}: its train images are decoded and cropped per batch, which needs "
                f"--image-size and --aug none, flip or rrc-flip (got {cfg.aug}); or pass "
                "--data-path memory to train from a decoded cache"
            )
        rows = read_encoded(ds, cfg.train_split, sampler.subset)
        log.info(
            "holding %s encoded train images (%.2f GB) in host memory", f"{len(rows.rows):,}", rows.data.nbytes / 1e9
        )
        return JpegSource(rows, sampler, cfg, dist, device, ds.channels)
    if stream and cfg.mode == "ideal":
        source = StreamSource(
            ds,
            cfg.train_split,
            per_rank,
            cfg.seed,
            dist,
            device,
            cfg.num_workers,
            cfg.allow_reuse,
            -(-cfg.eval_train_samples // dist.world),
        )
        source.check_pool(cfg.steps)
        return source
    if stream:
        # The Real World reads the pool once, keeps its n samples, then trains from memory.
        images, labels = collect_rows(ds, cfg.train_split, sampler.subset)
        store = TrainStore.build(images, labels, device, held=sampler.subset)
    else:
        arrays = shards.load_split(ds.root, cfg.train_split, size=cache_size(ds, cfg.image_size), progress=False)
        store = TrainStore.build(arrays.images, arrays.labels, device, rows=sampler.subset)
    return MemorySource(sampler, store, cfg.batch_size, dist, cfg.eval_train_samples)


def build_run_data(cfg: RunConfig, dist: ddp.Dist, device: torch.device, progress: bool) -> RunData:
    """Open, check and load the data of a run; TrainError for any bad input, before training starts."""
    if cfg.batch_size % dist.world:
        raise TrainError(
            f"--batch-size={cfg.batch_size}: the global batch must split evenly over "
            f"{dist.world} ranks; use a multiple of {dist.world}"
        )
    cfg = resolve_data_path(cfg, device)  # run_training resolved it already; a caller of ours may not have
    stream = cfg.data_path == "stream"
    ds, extras = _open_all(cfg, dist, stream, progress)
    pool = ds.split(cfg.train_split).count
    size = cache_size(ds, cfg.image_size)
    h, w, c = ds.manifest.image_shape or (size, size, ds.channels)
    if cfg.image_size is None and h != w:
        raise TrainError(f"{ds.location}: {h}x{w} images are not square; pass --image-size to crop them")
    sampler = RealSampler(pool, cfg.n, cfg.seed) if cfg.mode == "real" else IdealSampler(pool, cfg.seed)
    num_classes = len(ds.manifest.class_names)
    source = _train_source(cfg, ds, sampler, dist, device, stream)
    names = list(ds.manifest.class_names)
    eval_sets = [_eval_set("test", ds, cfg.test_split, cfg, dist, device, stream, cfg.test_samples, c, names)]
    eval_sets += [_eval_set(name, d, _test_split(d), cfg, dist, device, stream, None, c, names) for name, d in extras]
    augment = source.view if isinstance(source, JpegSource) else None
    return RunData(sampler, source, eval_sets, num_classes, c, cfg.image_size or h, augment)
