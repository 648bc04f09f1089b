"""Read shards back: open local or remote shard URLs and iterate decoded samples.

    for key, image, cls, meta in iter_samples(["data/train-000000.tar"]):
        ...   # image: uint8 HxWxC numpy array, cls: int, meta: the sample's json dict

Parses our fixed ustar headers directly and decodes images with PIL, with no per-sample pipeline
stages: the per-sample Python work is what limits plain `webdataset` on small images (measured by
`python bench/bench_shards.py`: 2.7x `.decode("rgb8")`, bench/RESULTS.md).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from shards.codec import IMAGE_EXTS, decode_image, group_samples
from shards.errors import ShardsError
from shards.httpio import open_http
from shards.tario import iter_tar_members
from shards.urls import is_url

Sample = tuple[str, Any, int, dict[str, Any]]  # key, image (uint8 HxWxC array, or bytes), cls, meta


def open_url(url: str | os.PathLike) -> BinaryIO:
    """Open a shard for reading: a local path, `http(s)://...` or `hf://datasets/ORG/NAME[@REV]/path`.

    URLs are read with retries and resumed where a connection breaks (shards.httpio)."""
    url = str(url)
    if is_url(url):
        return open_http(url)
    path = Path(url)
    if not path.is_file():
        raise ShardsError(f"{url}: no such shard; check the path or rebuild the dataset")
    return open(path, "rb", buffering=1 << 20)


def _samples(
    stream: BinaryIO, source: str, decode: bool, channels: int | None, shape: list[int] | None = None
) -> Iterator[Sample]:
    try:
        for key, fields in group_samples(iter_tar_members(stream, source), source):
            ext = next((e for e in IMAGE_EXTS if e in fields), None)
            if ext is None or "cls" not in fields:
                raise ValueError(f"sample {key!r} lacks an image or a cls member (has {sorted(fields)})")
            try:
                image = decode_image(fields[ext], channels, shape) if decode else fields[ext]
            except ValueError as exc:
                raise ValueError(f"sample {key}: {exc}") from exc
            meta = json.loads(fields["json"]) if "json" in fields else {}
            yield key, image, int(fields["cls"]), meta
    except (ValueError, OSError) as exc:
        raise ShardsError(
            f"{source}: unreadable shard ({exc}); verify the dataset with "
            "`python -m shards verify DIR` and rebuild what it reports"
        ) from exc


def iter_shard(url: str | os.PathLike, decode: bool = True, channels: int | None = None) -> Iterator[Sample]:
    """Yield (key, image, cls, meta) for every sample of one shard, in order.

    `decode=False` yields the encoded image bytes. Errors name the shard.
    """
    with open_url(url) as stream:
        yield from _samples(stream, str(url), decode, channels)


def iter_tar_samples(
    data: bytes, source: str, channels: int | None = None, shape: list[int] | None = None, decode: bool = True
) -> Iterator[Sample]:
    """iter_shard over a shard already read into memory; `shape` (H, W) refuses other image sizes from
    their headers, before decoding (a decompression bomb costs nothing)."""
    return _samples(io.BytesIO(data), source, decode, channels, shape)


def iter_samples(
    urls: Iterable[str | os.PathLike], decode: bool = True, channels: int | None = None
) -> Iterator[Sample]:
    """iter_shard over several shards, one after another."""
    for url in urls:
        yield from iter_shard(url, decode=decode, channels=channels)
