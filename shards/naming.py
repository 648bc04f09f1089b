"""Names of splits, shards, keys and fields, and the seeds derived from them.

Keys and field names are restricted to `[a-z0-9_-]`: webdataset and HF `datasets` split a member
name at its first dot, so a dot (or upper case, which some filesystems fold) would silently merge or
split samples (webdataset's `base_plus_ext` in webdataset/tariterators.py; HF `datasets`'
webdataset builder groups members the same way).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from shards.errors import ShardsError

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
KEY_DIGITS = 9
SHARD_DIGITS = 6


def validate_name(kind: str, name: str) -> str:
    """Return `name` if it is a valid key, field or split name, else raise a clear ShardsError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ShardsError(
            f"{kind} {name!r}: must match [a-z0-9_-]+ (lower case, no dots: a dot would merge samples "
            "in webdataset and HF datasets); rename it"
        )
    return name


def sample_key(index: int) -> str:
    """The key of the sample at `index` within its split: zero-padded decimal."""
    return f"{index:0{KEY_DIGITS}d}"


def shard_stem(split: str, shard_index: int) -> str:
    """`train-000012`: the shard's name without folder or extension."""
    return f"{split}-{shard_index:0{SHARD_DIGITS}d}"


def shard_relpath(split: str, shard_index: int) -> str:
    """Path of a shard relative to the dataset root (HF split detection reads `data/{split}-*.tar`)."""
    return f"data/{shard_stem(split, shard_index)}.tar"


def derive_seed(seed: int, split: str, index: int) -> int:
    """A 63-bit seed from (global seed, split, index): independent of batches, workers and resumes."""
    digest = hashlib.blake2b(f"{seed}/{split}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


SHARD_FILE_RE = re.compile(rf"^data/([a-z0-9_-]+)-([0-9]{{{SHARD_DIGITS}}})\.tar$")


def validate_shard_file(file: object, split: str, where: str) -> str:
    """Return `file` if it is exactly `data/{split}-NNNNNN.tar`, else raise a clear ShardsError.

    Manifests come from disk or from a server: a name such as `/etc/x` or `data/../../x` joined to a
    cache folder would read or write anywhere, so nothing but the format's own naming is accepted.
    """
    match = SHARD_FILE_RE.match(file) if isinstance(file, str) else None
    if match is None or match.group(1) != split:
        raise ShardsError(
            f"{where}: shard file {file!r} is not named data/{split}-NNNNNN.tar (the only names the "
            "format allows; anything else could point outside the dataset folder); the manifest is "
            "damaged or hostile: rebuild or re-download the dataset from a source you trust"
        )
    return str(file)


def shard_path(root: str | os.PathLike, file: str) -> Path:
    """`root / file` for a validated shard name, refused when it resolves outside `root` (a linked data/)."""
    root = Path(root)
    path = root / file
    if not path.resolve().is_relative_to(root.resolve()):
        raise ShardsError(
            f"{path}: resolves to {path.resolve()}, outside the dataset folder {root} (a link?); "
            "copy the shards into the folder instead of linking them"
        )
    return path
