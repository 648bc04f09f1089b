"""The decoded cache: a split decoded once into a uint8 (N, H, W, C) `.npy` array plus labels.

    arrays = load_split("out/cifar5m", "train")   # memory-mapped; arrays.images[i] is sample i

The cache file is named by a hash of the split's shard sha256s (and the requested size), so a changed
dataset is never read from a stale cache; every shard's sha256 is checked as it is decoded, so a cache
only ever holds verified data and its users need not hash the dataset again. Every image is checked
against the manifest's size from its header before it is decoded (a decompression bomb costs nothing)
and every label against the manifest's classes, so a bad shard is a clear error naming the shard and key.

It is built in parallel, one shard per task, each writing its rows with ordinary positioned writes into
a temporary file that is renamed when complete. The file's blocks are reserved first (free space checked,
then `posix_fallocate`): writing through a memory map instead would kill the workers with SIGBUS when
the disk fills, where a write() fails with a catchable ENOSPC.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shards.cachedir import decoded_cache_dir
from shards.checked import check_split
from shards.diskspace import check_free_space, is_no_space, no_space_error
from shards.errors import ShardsError
from shards.manifest import load_manifest
from shards.naming import sample_key, shard_path
from shards.read import iter_tar_samples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitArrays:
    images: np.ndarray  # uint8 (N, H, W, C), memory-mapped
    labels: np.ndarray  # int64 (N,)
    class_names: list[str]


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


@dataclass(frozen=True)
class _ShardJob:
    """What one worker needs to decode one shard into rows [first, first + count) of the cache file."""

    path: str
    sha256: str
    first: int
    count: int
    tmp: str
    offset: int  # where row 0 starts in the .npy file
    shape: tuple[int, int, int]  # (H, W, C) of a row
    resize: int | None  # decode any size and fit it to resize x resize; None: the manifest's fixed shape
    num_classes: int


ROWS_PER_WRITE = 256


def _decode_shard(job: _ShardJob) -> np.ndarray:
    try:
        data = Path(job.path).read_bytes()  # one read serves the hash check and the decode
    except FileNotFoundError:
        raise _missing(Path(job.path)) from None
    except OSError as exc:
        raise ShardsError(
            f"{job.path}: cannot read ({exc.strerror}); run `python -m shards verify` on the "
            "dataset and rebuild or re-download what it reports"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != job.sha256:
        raise ShardsError(
            f"{job.path}: corrupt: sha256 {digest[:12]}... but the manifest says {job.sha256[:12]}...; "
            "run `python -m shards verify` on the dataset and rebuild or re-download it"
        )
    labels = np.empty(job.count, dtype=np.int64)
    rows = np.empty((min(ROWS_PER_WRITE, job.count), *job.shape), dtype=np.uint8)
    fixed = None if job.resize else list(job.shape)
    n = 0
    with open(job.tmp, "r+b") as f:
        for n, (key, image, cls, _) in enumerate(iter_tar_samples(data, job.path, job.shape[2], fixed), start=1):
            where = f"{job.path}: sample {key}"
            if n > job.count or key != sample_key(job.first + n - 1):
                raise ShardsError(f"{where} found where index {job.first + n - 1} was expected; rebuild it")
            if not 0 <= cls < job.num_classes:
                raise ShardsError(
                    f"{where}: label {cls} outside [0, {job.num_classes}), the manifest's classes; "
                    "rebuild the shard (or fix class_names)"
                )
            rows[(n - 1) % len(rows)] = _fit(image, job.resize) if job.resize else image
            labels[n - 1] = cls
            if n % len(rows) == 0 or n == job.count:
                start = (n - 1) // len(rows) * len(rows)
                os.pwrite(f.fileno(), rows[: n - start].tobytes(), job.offset + (job.first + start) * rows[0].nbytes)
    if n != job.count:
        raise ShardsError(f"{job.path}: {n} samples, manifest says {job.count}; re-run the build to repair it")
    return labels


def _missing(path: Path) -> ShardsError:
    return ShardsError(
        f"{path}: missing, but the manifest lists it; re-run the command that made the dataset (or "
        "re-download it) to restore the shard"
    )


def _check_sizes(root: Path, info) -> None:
    """Every shard file has its manifest size, before the cache is sized by the manifest (bytes bound samples)."""
    for entry in info.shards:
        path = shard_path(root, entry.file)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise _missing(path) from None
        if size != entry.bytes:
            raise ShardsError(
                f"{path}: {size:,} bytes, the manifest says {entry.bytes:,}; run `python -m shards "
                "verify` on the dataset and rebuild or re-download it"
            )


def _create_npy(path: Path, shape: tuple[int, ...]) -> int:
    """A uint8 .npy file of `shape` with its blocks reserved; returns the offset of its data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        offset = f.tell()
        f.flush()
        try:
            os.posix_fallocate(f.fileno(), 0, offset + math.prod(shape))
        except (AttributeError, OSError) as exc:  # no posix_fallocate (macOS) or a filesystem without it
            if is_no_space(exc):
                raise
            f.truncate(offset + math.prod(shape))
    return offset


def load_split(
    root: str | os.PathLike,
    split: str,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    size: int | None = None,
    progress: bool = True,
) -> SplitArrays:
    """Decode `split` of a local dataset into the cache (once; `cache_dir`, else the user cache directory,
    shards.cachedir) and return it memory-mapped. Nothing is written into the dataset folder."""
    root = Path(root)
    manifest = load_manifest(root)
    if split not in manifest.splits:
        raise ShardsError(f"{root}: no split {split!r} (has {', '.join(manifest.splits)})")
    info = manifest.splits[split]
    check_split(split, info, str(root))  # the arrays are sized by `count`: it must be what the shards hold
    shape = manifest.image_shape
    if size is None and shape is None:
        raise ShardsError(f"{root}: images differ in size; pass size= to resize them into the cache")
    height, width, channels = (size, size, shape[2] if shape else 3) if size else shape
    key = hashlib.sha256(f"{split}/{size}/".encode() + "".join(e.sha256 for e in info.shards).encode()).hexdigest()
    cache = Path(cache_dir) if cache_dir else decoded_cache_dir(manifest)
    images_path = cache / f"{split}-{key[:16]}-images.npy"
    labels_path = cache / f"{split}-{key[:16]}-labels.npy"
    if not (images_path.is_file() and labels_path.is_file()):
        cache.mkdir(parents=True, exist_ok=True)
        _check_sizes(root, info)
        _build(
            root,
            info,
            images_path,
            labels_path,
            (info.count, height, width, channels),
            size,
            num_workers,
            progress,
            len(manifest.class_names),
        )
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


def _remove_stale_temps(cache: Path) -> None:
    """Delete the temporary files of builds on this host whose process is gone (killed): each one is as big
    as a whole cache, reserved on disk. Files of live processes and of other hosts are left alone."""
    host = socket.gethostname()
    for tmp in cache.glob(f".*.{host}-*.tmp.npy"):
        pid = tmp.name.rsplit("-", 1)[-1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a killed cache build", tmp)
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _build(
    root, info, images_path: Path, labels_path: Path, shape, size, num_workers, progress, num_classes: int
) -> None:
    from tqdm.auto import tqdm

    _remove_stale_temps(images_path.parent)
    tag = f"{socket.gethostname()}-{os.getpid()}"
    tmp = images_path.with_name(f".{images_path.name}.{tag}.tmp.npy")
    labels_tmp = labels_path.with_name(f".{labels_path.name}.{tag}.tmp.npy")
    need = math.prod(shape) + 8 * info.count + (1 << 20)
    labels = np.empty(info.count, dtype=np.int64)
    workers = num_workers or min(len(info.shards), os.cpu_count() or 1)
    try:
        check_free_space(images_path.parent, need)
        offset = _create_npy(tmp, shape)
        jobs = [
            _ShardJob(
                str(shard_path(root, e.file)),
                e.sha256,
                e.first_index,
                e.samples,
                str(tmp),
                offset,
                tuple(shape[1:]),
                size,
                num_classes,
            )
            for e in info.shards
        ]
        with (
            _executor(workers) as pool,
            tqdm(
                total=info.count,
                unit="img",
                desc=f"decoding {root.name}/{labels_path.name.split('-')[0]}",
                disable=not progress,
            ) as bar,
        ):
            futures = {pool.submit(_decode_shard, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                labels[job.first : job.first + job.count] = future.result()
                bar.update(job.count)
        np.save(labels_tmp, labels)
        os.replace(labels_tmp, labels_path)
        os.replace(tmp, images_path)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space_error(images_path.parent, need) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
        labels_tmp.unlink(missing_ok=True)
