"""manifest.json: the complete description of a dataset, written last.

Readers get exact counts, shard hashes, class names and the generation config without opening a tar.
It holds nothing that changes between runs (no times, hosts or paths), so an interrupted-and-resumed
build writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shards.errors import ShardsError
from shards.httpio import check_dataset_url
from shards.naming import validate_name, validate_shard_file
from shards.read import open_url
from shards.urls import is_url

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a config: what a resumed run must match."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class ShardEntry:
    file: str
    samples: int
    bytes: int
    sha256: str
    first_index: int
    label_counts: list[int]


@dataclass(frozen=True)
class SplitInfo:
    count: int
    shards: list[ShardEntry]
    label_histogram: list[int]

    def shard_files(self) -> list[str]:
        return [s.file for s in self.shards]


@dataclass(frozen=True)
class Manifest:
    format_version: int
    toolkit_version: str
    config: dict[str, Any]
    config_hash: str
    class_names: list[str]
    image_ext: str
    image_shape: list[int] | None
    samples_per_shard: int
    json_schema: dict[str, str]
    splits: dict[str, SplitInfo]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    min_shards: int = 1  # each split has at least min(min_shards, count) shards (shard_size below)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def data_sha256(self) -> str:
        """What the dataset holds, by content: sha256 over its class names and, per split, the count and every
        shard's file, samples and sha256. Rebuilt with other bytes under the same config, it differs."""
        content = {
            "class_names": self.class_names,
            "splits": {
                name: [info.count, [[e.file, e.samples, e.sha256] for e in info.shards]]
                for name, info in sorted(self.splits.items())
            },
        }
        return config_hash(content)

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST) -> Manifest:
        """Build from parsed JSON, checking every field's type first (a ShardsError names the field)."""
        _check_manifest_fields(data, source)
        splits = {
            name: SplitInfo(
                count=s["count"],
                shards=[ShardEntry(**e) for e in s["shards"]],
                label_histogram=s["label_histogram"],
            )
            for name, s in data["splits"].items()
        }
        return cls(**{**data, "splits": splits})


# Loaders split a split's shards among workers (and ranks): webdataset raises "No samples found" in a
# worker left without a shard, and timm's wds reader in training mode yields only the samples of whole
# rounds over the workers, silently (both seen with a one-shard test split and 2 workers). At least 16
# shards per split covers 16 workers, or 2 ranks x 8 workers, with no worker idle.
MIN_SHARDS = 16


def shard_size(count: int, samples_per_shard: int, min_shards: int = 1) -> int:
    """Samples per shard of a split of `count`: `samples_per_shard`, or less so that the split has at least
    min(min_shards, count) shards. ceil(count / min_shards) first: for a count divisible by min_shards
    that is min_shards equal shards, which timm's training-mode reader (capped at ceil(count / workers)
    per worker) reads exactly once; for counts below min_shards x (min_shards - 1) it can give too few
    shards, and then the largest size that still gives min_shards."""
    if min_shards <= 1:
        return samples_per_shard
    if count <= min_shards:
        return 1
    size = min(samples_per_shard, -(-count // min_shards))
    if -(-count // size) < min_shards:
        size = (count - 1) // (min_shards - 1)
    return max(1, size)


def dataset_identity(
    config: dict[str, Any],
    class_names: list[str],
    splits: dict[str, int],
    samples_per_shard: int,
    image_ext: str,
    min_shards: int = 1,
) -> dict[str, Any]:
    """Everything that decides the bytes of a dataset: what its config hash covers. `min_shards` is left
    out at 1 (the rule before it existed), so those datasets keep their hash."""
    identity = {
        "config": config,
        "class_names": class_names,
        "splits": splits,
        "samples_per_shard": samples_per_shard,
        "image_ext": image_ext,
    }
    return identity if min_shards == 1 else {**identity, "min_shards": min_shards}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KINDS = {  # the JSON types manifest fields may have
    "int>=0": lambda v: _is_int(v) and v >= 0,
    "int>=1": lambda v: _is_int(v) and v >= 1,
    "str": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "list of str": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "list of int>=0": lambda v: isinstance(v, list) and all(_is_int(x) and x >= 0 for x in v),
    "null or list of 3 int>=1": lambda v: (
        v is None or (isinstance(v, list) and len(v) == 3 and all(_is_int(x) and x >= 1 for x in v))
    ),
    "object of str": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "sha256 hex": lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v),
}
_FIELDS = {
    "format_version": "int>=1",
    "toolkit_version": "str",
    "config": "object",
    "config_hash": "str",
    "class_names": "list of str",
    "image_ext": "str",
    "image_shape": "null or list of 3 int>=1",
    "samples_per_shard": "int>=1",
    "json_schema": "object of str",
    "splits": "object",
    "skipped": "list",
    "min_shards": "int>=1",
}
_SPLIT_FIELDS = {"count": "int>=0", "shards": "list", "label_histogram": "list of int>=0"}
_ENTRY_FIELDS = {
    "file": "str",
    "samples": "int>=0",
    "bytes": "int>=0",
    "sha256": "sha256 hex",
    "first_index": "int>=0",
    "label_counts": "list of int>=0",
}


def _check_fields(obj: Any, fields: dict[str, str], where: str, source: str, optional=()) -> None:
    if not isinstance(obj, dict):
        raise ShardsError(
            f"{source}: {where or 'the manifest'} must be a JSON object, got "
            f"{type(obj).__name__}; rebuild or re-download the dataset"
        )
    unknown = sorted(set(obj) - set(fields))
    missing = sorted(set(fields) - set(obj) - set(optional))
    if unknown or missing:
        what = f"unknown field {where}{unknown[0]}" if unknown else f"missing field {where}{missing[0]}"
        raise ShardsError(f"{source}: {what}; not a manifest of this format: rebuild or re-download the dataset")
    for name, kind in fields.items():
        if name in obj and not _KINDS[kind](obj[name]):
            shown = json.dumps(obj[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ShardsError(
                f"{source}: field {where}{name}: expected {kind}, got {shown}; the manifest "
                "was edited or damaged: rebuild or re-download the dataset"
            )


def _check_manifest_fields(data: Any, source: str) -> None:
    """Type-check a parsed manifest, naming the first bad field (`splits.train.shards[3].sha256`).

    The manifest may come from a server, so every shard file name must also be the format's own
    `data/{split}-NNNNNN.tar` (see naming.validate_shard_file)."""
    version = data.get("format_version") if isinstance(data, dict) else None
    if _is_int(version) and version > FORMAT_VERSION:
        raise ShardsError(
            f"{source}: format version {version} is newer than this toolkit's {FORMAT_VERSION}; upgrade the toolkit"
        )
    _check_fields(data, _FIELDS, "", source, optional=("skipped", "min_shards"))
    for split, info in data["splits"].items():
        validate_name("split", split)
        _check_fields(info, _SPLIT_FIELDS, f"splits.{split}.", source)
        for i, entry in enumerate(info["shards"]):
            where = f"splits.{split}.shards[{i}]."
            _check_fields(entry, _ENTRY_FIELDS, where, source)
            validate_shard_file(entry["file"], split, f"{source}: {where}file")


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Read `<root>/manifest.json` of a folder or a dataset URL; a clear error when missing or malformed."""
    if is_url(root):
        url = f"{check_dataset_url(str(root))}/{MANIFEST}"
        with open_url(url) as f:
            return parse_manifest(f.read(), url)
    root = Path(root)
    if not root.is_dir():
        raise ShardsError(f"{root}: no such dataset folder; check the path or build the dataset first")
    path = root / MANIFEST
    if not path.is_file():
        raise ShardsError(
            f"{root}: no {MANIFEST}, so the dataset is incomplete (a build was interrupted or is still "
            "running); re-run the command that builds it to finish it"
        )
    return parse_manifest(path.read_bytes(), str(path))


def parse_manifest(text: str | bytes, source: str) -> Manifest:
    """A Manifest from manifest.json's text; malformed JSON or fields are a ShardsError naming `source`."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ShardsError(f"{source}: not valid JSON ({exc}); rebuild or re-download the dataset") from exc
    return Manifest.from_dict(data, source)
