"""The decoded cache: a split decoded once into a uint8 (N, H, W, C) `.npy` array plus labels.

    arrays = load_split("out/cifar5m", "train")   # memory-mapped; arrays.images[i] is sample i

The cache file is named by a hash of the split's shard sha256s (and the requested size), so a changed
dataset is never read from a stale cache; every shard's sha256 is checked as it is decoded, so a cache
only ever holds verified data and its users need not hash the dataset again. It is built in parallel, one shard per task, each writing its
rows straight into a memory-mapped temporary file that is renamed when complete.
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shards.errors import ShardsError
from shards.manifest import load_manifest
from shards.read import iter_tar_samples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitArrays:
    images: np.ndarray  # uint8 (N, H, W, C), memory-mapped
    labels: np.ndarray  # int64 (N,)
    class_names: list[str]


def default_cache_dir(root: Path) -> Path:
    """`<dataset>/.cache` when writable, else a per-dataset folder under ~/.cache/deep-bootstrap."""
    if os.access(root, os.W_OK):
        return root / ".cache"
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deep-bootstrap" / digest


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to `size` and centre-crop a square (variable-size JPEG datasets)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    scale = size / min(h, w)
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    left, top = (pil.width - size) // 2, (pil.height - size) // 2
    out = np.asarray(pil.crop((left, top, left + size, top + size)))
    return out[:, :, None] if out.ndim == 2 else out


def _decode_shard(path: str, tmp: str, first: int, count: int, size: int | None, channels: int,
                  sha256: str, num_classes: int) -> np.ndarray:
    try:
        data = Path(path).read_bytes()  # one read serves the hash check and the decode
    except FileNotFoundError:
        raise ShardsError(f"{path}: missing, but the manifest lists it; re-run the command that made the "
                          "dataset (or re-download it) to restore the shard") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ShardsError(f"{path}: corrupt: sha256 {digest[:12]}... but the manifest says {sha256[:12]}...; "
                          "run `python -m shards verify` on the dataset and rebuild or re-download it")
    images = np.load(tmp, mmap_mode="r+")
    labels = np.empty(count, dtype=np.int64)
    n = 0
    for n, (key, image, cls, _) in enumerate(iter_tar_samples(data, path, channels), start=1):
        if int(key) != first + n - 1:
            raise ShardsError(f"{path}: sample {key} found where index {first + n - 1} was expected; rebuild it")
        if not 0 <= cls < num_classes:
            raise ShardsError(f"{path}: sample {key} has label {cls}, outside the manifest's {num_classes} classes "
                              f"[0, {num_classes}); rebuild the dataset")
        image = _fit(image, size) if size else image
        if image.shape != images.shape[1:]:
            raise ShardsError(f"{path}: sample {key} is a {'x'.join(map(str, image.shape))} image, the manifest "
                              f"says {'x'.join(map(str, images.shape[1:]))}; rebuild the dataset")
        images[first + n - 1] = image
        labels[n - 1] = cls
    if n != count:
        raise ShardsError(f"{path}: {n} samples, manifest says {count}; re-run the build to repair it")
    images.flush()
    return labels


def load_split(root: str | os.PathLike, split: str, cache_dir: str | os.PathLike | None = None,
               num_workers: int | None = None, size: int | None = None, progress: bool = True) -> SplitArrays:
    """Decode `split` of a local dataset into the cache (once) and return it memory-mapped."""
    root = Path(root)
    manifest = load_manifest(root)
    if split not in manifest.splits:
        raise ShardsError(f"{root}: no split {split!r} (has {', '.join(manifest.splits)})")
    info = manifest.splits[split]
    shape = manifest.image_shape
    if size is None and shape is None:
        raise ShardsError(f"{root}: images differ in size; pass size= to resize them into the cache")
    height, width, channels = (size, size, shape[2] if shape else 3) if size else shape
    key = hashlib.sha256(f"{split}/{size}/".encode() + "".join(e.sha256 for e in info.shards).encode()).hexdigest()
    cache = Path(cache_dir) if cache_dir else default_cache_dir(root)
    images_path = cache / f"{split}-{key[:16]}-images.npy"
    labels_path = cache / f"{split}-{key[:16]}-labels.npy"
    if not (images_path.is_file() and labels_path.is_file()):
        cache.mkdir(parents=True, exist_ok=True)
        _build(root, info, images_path, labels_path, (info.count, height, width, channels), size, num_workers,
               progress, len(manifest.class_names))
    return SplitArrays(np.load(images_path, mmap_mode="r"), np.load(labels_path), manifest.class_names)


class _InlineExecutor:
    """One worker: decode in this process (no pool start-up cost for small datasets)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future = Future()
        future.set_result(fn(*args))
        return future


def _executor(workers: int):
    return ProcessPoolExecutor(max_workers=workers) if workers > 1 else _InlineExecutor()


def _build(root, info, images_path: Path, labels_path: Path, shape, size, num_workers, progress,
           num_classes: int) -> None:
    from tqdm.auto import tqdm

    tmp = images_path.with_name(f".{images_path.name}.{os.getpid()}.tmp.npy")
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
    labels = np.empty(info.count, dtype=np.int64)
    workers = num_workers or min(len(info.shards), os.cpu_count() or 1)
    try:
        with _executor(workers) as pool, tqdm(
            total=info.count, unit="img", desc=f"decoding {root.name}/{labels_path.name.split('-')[0]}",
            disable=not progress,
        ) as bar:
            futures = {
                pool.submit(_decode_shard, str(root / e.file), str(tmp), e.first_index, e.samples, size,
                            shape[3], e.sha256, num_classes): e
                for e in info.shards
            }
            for future in as_completed(futures):
                entry = futures[future]
                labels[entry.first_index:entry.first_index + entry.samples] = future.result()
                bar.update(entry.samples)
        np.save(labels_path.with_name(labels_path.name + ".tmp.npy"), labels)
        os.replace(labels_path.with_name(labels_path.name + ".tmp.npy"), labels_path)
        os.replace(tmp, images_path)
    finally:
        tmp.unlink(missing_ok=True)
