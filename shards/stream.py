"""A streaming reader for training: uint8 image batches from shard URLs, split across ranks and workers.

    loader = DataLoader(StreamingBatches(urls, 512, seed=0, epoch=e, rank=r, world_size=w),
                        batch_size=None, num_workers=4, pin_memory=True)

The shard order is shuffled by (seed, epoch) *before* the split across ranks and workers, so every
epoch deals shards differently while no two readers ever share a shard; samples are shuffled within each
shard. Fewer shards than ranks x workers would leave readers idle (and hang DDP), so it is refused.

Each shard is read whole and checked against its manifest entry (size, sha256, keys, sample count) before
any of its samples is batched (shards.checked). The entries come from `entries` (one per URL), else from
the manifest of the dataset each URL lies in (`.../DATASET/data/SPLIT-NNNNNN.tar`), read once here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from shards.checked import check_split, read_checked_shard
from shards.errors import ShardsError
from shards.manifest import ShardEntry, load_manifest


class StreamingBatches(IterableDataset):
    """Yields {"image": uint8 (B,H,W,C), "cls": int64 (B,), "index": int64 (B,)} batches."""

    def __init__(
        self,
        urls: Sequence[str],
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        channels: int | None = None,
        entries: Sequence[ShardEntry] | None = None,
    ):
        if batch_size < 1:
            raise ShardsError(f"batch_size={batch_size}: must be >= 1")
        if not 0 <= rank < world_size:
            raise ShardsError(f"rank={rank}: must be in [0, world_size={world_size})")
        self.urls = [str(u) for u in urls]
        entries = manifest_entries(self.urls) if entries is None else list(entries)
        if len(entries) != len(self.urls):
            raise ShardsError(f"{len(entries)} manifest entries for {len(self.urls)} shard URLs: give one per URL")
        self.entries = dict(zip(self.urls, entries))
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
        return order[self.rank * num_workers + worker_id :: readers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker_id])
        images, labels, indices = [], [], []
        for url in self.shards_for(worker_id, num_workers):
            samples = read_checked_shard(url, self.entries[url], channels=self.channels)
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


def manifest_entries(urls: Sequence[str]) -> list[ShardEntry]:
    """The manifest entry of each shard URL, from the manifest of the dataset above its `data/` folder."""
    tables: dict[str, dict[str, ShardEntry]] = {}
    found = []
    for url in urls:
        root, sep, name = url.rpartition("/data/")
        if url.startswith("data/"):  # a relative path inside the current folder
            root, sep, name = ".", "/data/", url[len("data/") :]
        if not sep:
            raise ShardsError(
                f"{url}: not a shard of a dataset (DATASET/data/SPLIT-NNNNNN.tar); give shard URLs "
                "of a dataset with a manifest, or pass entries="
            )
        if root not in tables:
            manifest = load_manifest(root)
            for split, info in manifest.splits.items():
                check_split(split, info, root)
            tables[root] = {e.file: e for s in manifest.splits.values() for e in s.shards}
        entry = tables[root].get(f"data/{name}")
        if entry is None:
            raise ShardsError(f"{url}: not listed in {root}/manifest.json; give shards the manifest lists")
        found.append(entry)
    return found


def _batch(images: list[np.ndarray], labels: list[int], indices: list[int]) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(np.stack(images)),
        "cls": torch.tensor(labels, dtype=torch.int64),
        "index": torch.tensor(indices, dtype=torch.int64),
    }
