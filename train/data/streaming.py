"""The streaming data path (`--data-path stream`): shards read as they are, for pools that do not fit.

    rows_images, rows_labels = collect_rows(ds, "train", subset)   # Real: one pass, keep the n samples
    source = StreamSource(ds, "train", batch_size=64, ...)        # Ideal: exact per-rank batches
    x_u8, y, idx = source.batch(step)

The Real World reads the pool once and caches its n samples, then trains from memory exactly as on the
fast path. The Ideal World streams `shards.StreamingBatches` (shard order shuffled by seed and pass,
shards dealt to ranks and workers, so no sample is read twice in a pass) through DataLoader workers with
pinned memory and prefetch, re-cut into batches of exactly the per-rank size. Resuming re-reads the
stream up to the checkpoint's step (correct, but it costs one read of what was already trained on).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

import shards
from shards.checked import read_checked_shard
from train.core import ddp
from train.data.datasets import Dataset, PinnedStaging, check_sample
from train.errors import TrainError

log = logging.getLogger(__name__)


def collect_rows(ds: Dataset, split: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the sorted global `rows` of a split, reading only shards that hold some."""
    h, w, c = ds.manifest.image_shape
    images = np.empty((len(rows), h, w, c), dtype=np.uint8)
    labels = np.empty(len(rows), dtype=np.int64)
    entries = ds.split(split).shards
    urls = ds.shard_urls(split)
    for entry, url in zip(entries, urls):
        lo, hi = np.searchsorted(rows, [entry.first_index, entry.first_index + entry.samples])
        if lo == hi:
            continue
        for key, image, cls, _ in read_checked_shard(url, entry, channels=c):
            pos = np.searchsorted(rows, int(key))
            if pos < len(rows) and rows[pos] == int(key):
                check_sample(ds, url, key, image, cls)
                images[pos], labels[pos] = image, cls
    return images, labels


def _stream_workers(num_shards: int, world: int, wanted: int) -> int:
    # StreamingBatches needs a shard for every rank x worker; 0 workers reads in the main process.
    if num_shards < world:
        raise TrainError(
            f"{num_shards} train shards for {world} ranks: every rank needs a shard to stream; "
            "use fewer ranks, the memory path (--data-path memory) or smaller shards"
        )
    return min(wanted, num_shards // world)


class StreamSource:
    """Per-rank batches of exactly `batch_size` from a shuffled shard stream, with the ledger's indices."""

    def __init__(
        self,
        ds: Dataset,
        split: str,
        batch_size: int,
        seed: int,
        dist: ddp.Dist,
        device: torch.device,
        num_workers: int,
        allow_reuse: bool,
        keep: int,
    ):
        self.ds, self.split, self.batch_size, self.seed = ds, split, batch_size, seed
        self.dist, self.device, self.allow_reuse = dist, device, allow_reuse
        self.urls = ds.shard_urls(split)
        self.workers = _stream_workers(len(self.urls), dist.world, num_workers)
        self.counts = {url: e.samples for url, e in zip(self.urls, ds.split(split).shards)}
        self.passes = 0
        self.step = 0
        self._loader = self._open(0)
        self._pending: list[dict[str, torch.Tensor]] = []
        h, w, c = ds.manifest.image_shape
        self.keep = torch.empty((keep, h, w, c), dtype=torch.uint8, device=device)
        self.keep_labels = torch.empty(keep, dtype=torch.int64, device=device)
        self.kept = 0
        self._staging = (PinnedStaging(device), PinnedStaging(device)) if device.type == "cuda" else None

    def _dataset(self, epoch: int):
        return shards.StreamingBatches(
            self.urls,
            self.batch_size,
            seed=self.seed,
            epoch=epoch,
            rank=self.dist.rank,
            world_size=self.dist.world,
            shuffle=True,
            channels=self.ds.manifest.image_shape[2],
            entries=self.ds.split(self.split).shards,
        )

    def rank_samples(self, epoch: int, rank: int) -> int:
        """Samples rank `rank` reads in pass `epoch` (from the shard deal and the manifest counts)."""
        data = self._dataset(epoch)
        data.rank = rank
        return sum(
            self.counts[u] for w in range(max(1, self.workers)) for u in data.shards_for(w, max(1, self.workers))
        )

    def check_pool(self, steps: int) -> None:
        """Every rank must get steps x batch samples from the first pass, or reuse must be allowed."""
        least = min(self.rank_samples(0, r) for r in range(self.dist.world))
        if steps * self.batch_size > least and not self.allow_reuse:
            raise TrainError(
                f"streaming: {steps:,} steps x {self.batch_size:,} per rank need {steps * self.batch_size:,} "
                f"samples per rank, but the shard deal gives the smallest rank {least:,}: the Ideal World would "
                "reuse samples; lower --steps, use smaller shards, or pass --allow-reuse"
            )

    def _open(self, epoch: int):
        loader = torch.utils.data.DataLoader(
            self._dataset(epoch),
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )
        return iter(loader)

    def _next_chunk(self) -> dict[str, torch.Tensor]:
        while True:
            try:
                return next(self._loader)
            except StopIteration:
                self.passes += 1
                if not self.allow_reuse:
                    raise TrainError(
                        f"streaming: rank {self.dist.rank} ran out of samples at step {self.step:,}; "
                        "pass --allow-reuse to start another pass"
                    ) from None
                log.info("rank %d: starting pass %d over the stream", self.dist.rank, self.passes + 1)
                self._loader = self._open(self.passes)

    def _take(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        parts, have = [], 0
        while have < self.batch_size:
            chunk = self._pending.pop(0) if self._pending else self._next_chunk()
            need = self.batch_size - have
            if len(chunk["cls"]) > need:
                self._pending.insert(0, {k: v[need:] for k, v in chunk.items()})
                chunk = {k: v[:need] for k, v in chunk.items()}
            parts.append(chunk)
            have += len(chunk["cls"])
        images, labels, index = (torch.cat([p[k] for p in parts]) for k in ("image", "cls", "index"))
        bad = ((labels < 0) | (labels >= len(self.ds.manifest.class_names))).nonzero()
        if len(bad):  # a cheap check on the CPU batch: an IndexError in the loss would name nothing
            i = int(bad[0])
            check_sample(self.ds, f"{self.ds.location}/{self.split}", f"{int(index[i]):09d}", images[i], int(labels[i]))
        return images, labels, index

    def _remember(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        # The first samples this rank trains on are its share of the Ideal World's train-eval set.
        room = min(len(labels), len(self.keep_labels) - self.kept)
        if room > 0:
            self.keep[self.kept : self.kept + room] = images[:room].to(self.device)
            self.keep_labels[self.kept : self.kept + room] = labels[:room].to(self.device)
            self.kept += room

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        if step != self.step:
            raise RuntimeError(f"stream asked for step {step}, is at {self.step}")
        images, labels, index = self._take()
        self._remember(images, labels)
        self.step += 1
        if self._staging is None:
            return images, labels, index.numpy()
        return self._staging[0].copy(images), self._staging[1].copy(labels), index.numpy()

    def skip_to(self, step: int) -> None:
        """Fast-forward a fresh stream to `step` (resume): read and drop what was trained on."""
        while self.step < step:
            images, labels, _ = self._take()
            self._remember(images, labels)
            self.step += 1

    def train_eval(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        count = min(self.kept, step * self.batch_size)
        return self.keep[:count], self.keep_labels[:count]
