"""A streaming reader for training: uint8 image batches from shard URLs, split across ranks and workers.

    loader = DataLoader(StreamingBatches(urls, 512, seed=0, epoch=e, rank=r, world_size=w),
                        batch_size=None, num_workers=4, pin_memory=True)

The shard order is shuffled by (seed, epoch) *before* the split across ranks and workers, so every
epoch deals shards differently while no two readers ever share a shard; samples are shuffled within each
shard. Fewer shards than ranks x workers would leave readers idle (and hang DDP), so it is refused.
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from shards.errors import ShardsError
from shards.read import iter_shard


class StreamingBatches(IterableDataset):
    """Yields {"image": uint8 (B,H,W,C), "cls": int64 (B,), "index": int64 (B,)} batches."""

    def __init__(self, urls: Sequence[str], batch_size: int, seed: int = 0, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, drop_last: bool = False, channels: int | None = None):
        if batch_size < 1:
            raise ShardsError(f"batch_size={batch_size}: must be >= 1")
        if not 0 <= rank < world_size:
            raise ShardsError(f"rank={rank}: must be in [0, world_size={world_size})")
        self.urls = [str(u) for u in urls]
        self.batch_size = batch_size
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.shuffle, self.drop_last, self.channels = shuffle, drop_last, channels

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shards_for(self, worker_id: int, num_workers: int) -> list[str]:
        """The shards one reader (this rank, `worker_id` of `num_workers`) reads this epoch."""
        readers = self.world_size * num_workers
        if len(self.urls) < readers:
            raise ShardsError(
                f"{len(self.urls)} shards for {self.world_size} ranks x {num_workers} workers = {readers} readers: "
                "every reader needs at least one shard; use fewer workers or ranks, or smaller shards"
            )
        order = list(self.urls)
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order[self.rank * num_workers + worker_id::readers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker_id])
        images, labels, indices = [], [], []
        for url in self.shards_for(worker_id, num_workers):
            samples = list(iter_shard(url, channels=self.channels))
            order = rng.permutation(len(samples)) if self.shuffle else range(len(samples))
            for i in order:
                key, image, cls, _ = samples[i]
                images.append(image)
                labels.append(cls)
                indices.append(int(key))
                if len(images) == self.batch_size:
                    yield _batch(images, labels, indices)
                    images, labels, indices = [], [], []
        if images and not self.drop_last:
            yield _batch(images, labels, indices)


def _batch(images: list[np.ndarray], labels: list[int], indices: list[int]) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(np.stack(images)),
        "cls": torch.tensor(labels, dtype=torch.int64),
        "index": torch.tensor(indices, dtype=torch.int64),
    }
