"""Checked reads: a shard against its manifest entry, and a split's shards against its count.

    check_split("train", manifest.splits["train"], "out/cifar5m")   # shards tile [0, count), else ShardsError
    samples = read_checked_shard(url, entry, channels=3)            # [(key, image, cls, meta), ...], checked

Every byte that trains must match its manifest, whatever path it came by. A shard is read whole (a
bounded read: never more than its entry's size plus one byte), its size and sha256 are compared with the
entry, and only then is it decoded; its keys must be the entry's indices in order and their number its
`samples`. So a shard that changed on a server, was cut at a member boundary, or is an empty file whose
hash an edited manifest records, fails before any of its samples is used. A split's `count` is trusted
only when its shards' `samples` add up to it and each shard starts where the one before ended: readers
size their arrays by it, and a row no shard fills would train as a black image with a garbage label.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from shards.errors import ShardsError
from shards.naming import sample_key
from shards.read import Sample, iter_tar_samples, open_url

if TYPE_CHECKING:
    from shards.manifest import ShardEntry, SplitInfo

# A sample is at least two tar members (image, cls), each a 512-byte header and a 512-byte block
# (FORMAT.md: ustar members): a shard claiming more samples than its bytes allow is an edited manifest.
MIN_SAMPLE_BYTES = 2 * 1024

_FIX = "the manifest was edited or damaged: re-download or rebuild the dataset"


def check_split(split: str, info: SplitInfo, source: str) -> None:
    """The split's shards must tile [0, count): first indices contiguous, samples summing to `count`."""
    end = 0
    for i, entry in enumerate(info.shards):
        where = f"{source}: splits.{split}.shards[{i}]"
        if entry.first_index != end:
            raise ShardsError(
                f"{where} starts at index {entry.first_index:,}, but the shards before it end at {end:,}; {_FIX}"
            )
        if entry.samples * MIN_SAMPLE_BYTES > entry.bytes:
            raise ShardsError(
                f"{where} claims {entry.samples:,} samples in {entry.bytes:,} bytes (a sample takes at "
                f"least {MIN_SAMPLE_BYTES:,}); {_FIX}"
            )
        end += entry.samples
    if end != info.count:
        raise ShardsError(
            f"{source}: splits.{split}.count is {info.count:,}, but its shards hold {end:,} samples; {_FIX}"
        )


def read_shard_bytes(url: str | os.PathLike, entry: ShardEntry) -> bytes:
    """The shard's bytes, after checking their size and sha256 against its manifest entry."""
    with open_url(url) as stream:
        data = stream.read(entry.bytes + 1)  # bounded: a server sending more cannot fill the memory
    if len(data) != entry.bytes:
        kind = "cut short" if len(data) < entry.bytes else "longer"
        raise ShardsError(
            f"{url}: {kind}: {len(data):,} bytes where the manifest says {entry.bytes:,}; the shard "
            "changed or broke since the manifest was written: verify the dataset (`python -m shards "
            "verify`) and rebuild, re-publish or re-download it"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ShardsError(
            f"{url}: corrupt: sha256 {digest[:12]}... but the manifest says {entry.sha256[:12]}...; the "
            "shard changed since the manifest was written: verify the dataset (`python -m shards "
            "verify`) and rebuild, re-publish or re-download it"
        )
    return data


def read_checked_shard(
    url: str | os.PathLike,
    entry: ShardEntry,
    channels: int | None = None,
    shape: list[int] | None = None,
    decode: bool = True,
) -> list[Sample]:
    """Every sample of one shard, checked against its manifest entry (bytes, sha256, keys, count)."""
    samples = list(iter_tar_samples(read_shard_bytes(url, entry), str(url), channels, shape, decode))
    for n, (key, *_) in enumerate(samples):
        if key != sample_key(entry.first_index + n):
            raise ShardsError(f"{url}: sample {key} found where index {entry.first_index + n:,} was expected; {_FIX}")
    if len(samples) != entry.samples:
        raise ShardsError(f"{url}: {len(samples):,} samples where the manifest says {entry.samples:,}; {_FIX}")
    return samples
