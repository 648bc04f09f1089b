"""Datasets for training: open and check a `shards` dataset, and hold its uint8 images on the device.

    ds = open_dataset("datasets/digits")               # or an http(s):// / hf://datasets/... URL
    images, labels = read_split(ds, "test", size=None, limit=10_000, stream=False)
    store = TrainStore.build(images, labels, rows=subset, device=device)   # GPU if it fits, else pinned RAM
    x_u8, y = store.gather(global_indices)             # one batch, uint8 NHWC on the device

The fast path reads the decoded uint8 cache (`shards.load_split`, memory-mapped) and copies the rows a
run needs (the Real World's n, or the whole pool for the Ideal World) to the GPU when they fit, else to
pinned host memory, from where each batch is gathered and copied asynchronously. The streaming path
(`train.data.streaming`) reads the shard files themselves.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

import shards
from shards.checked import check_split, read_checked_shard
from shards.urls import is_url
from shards.verify import verify_dataset
from train.errors import TrainError

log = logging.getLogger(__name__)

# Keep this much GPU memory free for the model, activations and the allocator (H200: 139 GiB).
_GPU_RESERVE_FRACTION = 0.25
_GPU_RESERVE_MIN_BYTES = 8 << 30
_COPY_CHUNK_BYTES = 256 << 20


@dataclass(frozen=True)
class Dataset:
    """A dataset as the trainer sees it: where it is (`root`: folder or URL) and its manifest."""

    location: str
    root: str
    manifest: shards.Manifest

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    @property
    def channels(self) -> int:
        shape = self.manifest.image_shape
        return shape[2] if shape else 3

    def split(self, split: str) -> shards.manifest.SplitInfo:
        if split not in self.manifest.splits:
            raise TrainError(
                f"{self.location}: no split {split!r} (it has {', '.join(self.manifest.splits)}); "
                "pass --train-split/--test-split or use another dataset"
            )
        return self.manifest.splits[split]

    def shard_urls(self, split: str) -> list[str]:
        return [f"{self.root.rstrip('/')}/{e.file}" for e in self.split(split).shards]


def open_dataset(location: str, stream: bool = False, verify: bool = True) -> Dataset:
    """Resolve (download a URL unless streaming) and read the manifest; check shard sha256s when streaming
    (the fast path's shards.load_split checks them while building its cache).

    Raises shards.ShardsError for a missing, incomplete or corrupt dataset.
    """
    if stream and is_url(location):
        # Streaming reads the shards where they are: fetch only the manifest.
        return _checked(Dataset(location, location, shards.load_manifest(location)))
    root = shards.resolve_dataset(location)
    manifest = shards.load_manifest(root)
    if verify and stream:  # the fast path's decoded cache checks every shard's sha256 as it is built
        report = verify_dataset(root, decode=False)
        if not report.ok:
            raise shards.ShardsError(
                f"{location}: {len(report.problems)} problem(s), first: {report.problems[0]}; run "
                f"`python -m shards verify {root}` for all, then rebuild or re-download the dataset"
            )
    return _checked(Dataset(location, str(root), manifest))


def _checked(ds: Dataset) -> Dataset:
    """Every split's count must be what its shards hold: readers size their arrays by it."""
    for split, info in ds.manifest.splits.items():
        check_split(split, info, ds.location)
    return ds


def check_sample(ds: Dataset, where: str, key: str, image: np.ndarray | torch.Tensor, cls: int) -> None:
    """A streamed sample must fit the manifest (its classes, its image shape): else one clear TrainError,
    not an IndexError in the loss or a broadcast error mid-run. (The memory path checks in shards.cache.)"""
    classes = len(ds.manifest.class_names)
    if not 0 <= cls < classes:
        raise TrainError(
            f"{where}: sample {key} has label {cls}, outside the manifest's {classes} classes "
            f"[0, {classes}); rebuild the dataset"
        )
    shape = ds.manifest.image_shape
    if shape is not None and tuple(image.shape) != tuple(shape):
        raise TrainError(
            f"{where}: sample {key} is a {'x'.join(map(str, image.shape))} image, the manifest says "
            f"{'x'.join(map(str, shape))}; rebuild the dataset"
        )


def cache_size(ds: Dataset, image_size: int | None) -> int | None:
    """Size to decode variable-size images to: the model size / 0.875 (256 for 224), None if fixed."""
    if ds.manifest.image_shape is not None:
        return None
    if image_size is None:
        raise TrainError(f"{ds.location}: its images differ in size; pass --image-size (e.g. 224)")
    return math.ceil(image_size / 0.875)


def read_split(
    ds: Dataset, split: str, size: int | None, limit: int | None, stream: bool, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) images and int64 labels of the first `limit` samples of a split.

    Fast path: the memory-mapped decoded cache (built once). Streaming: read the shards in order.
    """
    count = ds.split(split).count if limit is None else min(limit, ds.split(split).count)
    if not stream:
        arrays = shards.load_split(ds.root, split, size=size, progress=progress)
        return arrays.images[:count], arrays.labels[:count]
    if ds.manifest.image_shape is None:
        raise TrainError(
            f"{ds.location}: streaming needs images of one size; this dataset's differ: use --data-path memory"
        )
    h, w, c = ds.manifest.image_shape
    images = np.empty((count, h, w, c), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    # check_split (open_dataset) makes the shards tile [0, count): every row below is filled exactly once.
    for entry, url in zip(ds.split(split).shards, ds.shard_urls(split)):
        if entry.first_index >= count:
            break
        for key, image, cls, _ in read_checked_shard(url, entry, channels=c)[: count - entry.first_index]:
            check_sample(ds, f"{ds.location}/{split}", key, image, cls)
            images[int(key)], labels[int(key)] = image, cls
    return images, labels


def gpu_budget_bytes(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    free, total = torch.cuda.mem_get_info(device)
    return max(0, free - max(_GPU_RESERVE_MIN_BYTES, int(total * _GPU_RESERVE_FRACTION)))


def host_budget_bytes(meminfo: str = "/proc/meminfo") -> int:
    """80% of the memory available to a new process: Linux's MemAvailable, which counts the page cache the
    kernel can drop (proc(5)); free pages (SC_AVPHYS_PAGES) exclude it, and on a machine that has read a
    big dataset once they understate what fits several times over. Free pages where there is no meminfo."""
    try:
        with open(meminfo) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(0.8 * int(fields["MemAvailable"].split()[0]) * 1024)  # reported in kB
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return int(0.8 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 1 << 62


def copy_rows(images: np.ndarray, rows: np.ndarray | None, target: torch.Tensor) -> torch.Tensor:
    """Copy `images[rows]` (a memmap) into `target` in chunks, never holding the whole set twice."""
    count = len(images) if rows is None else len(rows)
    per_row = max(1, int(np.prod(images.shape[1:])))
    step = max(1, _COPY_CHUNK_BYTES // per_row)
    for start in range(0, count, step):
        stop = min(count, start + step)
        chunk = images[start:stop] if rows is None else images[rows[start:stop]]
        # np.require copies read-only memmap slices: torch wants writable arrays.
        target[start:stop].copy_(torch.from_numpy(np.require(chunk, requirements=["C", "W"])))
    return target


def to_device(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A small set (evaluation) straight onto the device."""
    x = copy_rows(images, None, torch.empty(images.shape, dtype=torch.uint8, device=device))
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


class PinnedStaging:
    """Host -> GPU copies that never stall the CPU: each batch goes through one of a few pinned buffers,
    copied with non_blocking=True. (A copy from pageable memory first waits for all queued GPU work, which
    would stop the CPU from preparing the next step while the GPU runs this one.) An event per buffer
    says when the GPU has finished reading it, so the CPU never overwrites a buffer still in flight."""

    def __init__(self, device: torch.device, slots: int = 4):
        self.device = device
        self._slots: list[tuple[torch.Tensor | None, torch.cuda.Event | None]] = [(None, None)] * slots
        self._turn = 0

    def buffer(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """The next pinned buffer of this shape, free to be written."""
        buf, done = self._slots[self._turn]
        if done is not None:
            done.synchronize()
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = torch.empty(shape, dtype=dtype, pin_memory=True)
            self._slots[self._turn] = (buf, None)
        return buf

    def send(self, buf: torch.Tensor) -> torch.Tensor:
        """Copy the buffer just returned by `buffer` to the device, asynchronously."""
        out = buf.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._slots[self._turn] = (buf, event)
        self._turn = (self._turn + 1) % len(self._slots)
        return out

    def copy(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device, through a pinned buffer."""
        buf = self.buffer(tuple(tensor.shape), tensor.dtype)
        buf.copy_(tensor)
        return self.send(buf)


class TrainStore:
    """The train rows a run draws from, as uint8 NHWC, on the GPU or in pinned host memory.

    `rows` (sorted global indices) says which pool samples are held; None means the whole pool.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, rows: np.ndarray | None, device: torch.device):
        self.images, self.labels, self.rows, self.device = images, labels, rows, device
        self.on_device = images.device.type == device.type
        if device.type == "cuda":
            self._indices = PinnedStaging(device)
            self._images = PinnedStaging(device)

    @classmethod
    def build(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        device: torch.device,
        rows: np.ndarray | None = None,
        held: np.ndarray | None = None,
    ) -> TrainStore:
        """Copy `images[rows]` (all when None) to the device or pinned memory; `held` names the global
        pool index of each copied row (default: `rows`)."""
        count = len(images) if rows is None else len(rows)
        shape = (count, *images.shape[1:])
        nbytes = int(np.prod(shape))
        chosen = labels if rows is None else labels[rows]
        y = torch.from_numpy(np.asarray(chosen, dtype=np.int64)).to(device)
        if device.type == "cpu" and rows is None and isinstance(images, np.memmap):
            # A CPU run over a whole cached pool gathers from the memory-mapped cache itself: a copy would
            # hold the pool twice (the copy and the page cache; 36 GB for 6M 32x32 images, bench_scale.py).
            # Mode "c" (copy-on-write) gives torch a writable view without ever writing the file.
            mapped = np.memmap(images.filename, dtype=images.dtype, mode="c", shape=images.shape, offset=images.offset)
            log.info("gathering %s train images (%.2f GB) from the memory-mapped cache", f"{count:,}", nbytes / 1e9)
            return cls(torch.from_numpy(mapped), y, held, device)
        if device.type == "cuda" and nbytes <= gpu_budget_bytes(device):
            target = torch.empty(shape, dtype=torch.uint8, device=device)
            where = "GPU"
        else:
            target = torch.empty(shape, dtype=torch.uint8, pin_memory=device.type == "cuda")
            where = "pinned host memory" if device.type == "cuda" else "host memory"
        log.info("holding %s train images (%.2f GB) in %s", f"{count:,}", nbytes / 1e9, where)
        copy_rows(images, rows, target)
        return cls(target, y, rows if held is None else held, device)

    def local(self, indices: np.ndarray) -> np.ndarray:
        return indices if self.rows is None else np.searchsorted(self.rows, indices)

    def gather(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (uint8 NHWC, on the device) and labels of the given global pool indices."""
        # index_select, not images[local]: a plain row copy, ~10x faster on CPU (measured, batch 128).
        local = torch.from_numpy(self.local(indices))
        if self.device.type != "cuda":
            return self.images.index_select(0, local), self.labels.index_select(0, local)
        on_gpu = self._indices.copy(local)
        if self.on_device:
            return self.images.index_select(0, on_gpu), self.labels.index_select(0, on_gpu)
        buf = self._images.buffer((len(local), *self.images.shape[1:]), torch.uint8)
        torch.index_select(self.images, 0, local, out=buf)
        return self._images.send(buf), self.labels.index_select(0, on_gpu)
