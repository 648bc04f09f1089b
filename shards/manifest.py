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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        splits = {
            name: SplitInfo(
                count=s["count"],
                shards=[ShardEntry(**e) for e in s["shards"]],
                label_histogram=s["label_histogram"],
            )
            for name, s in data["splits"].items()
        }
        return cls(**{**data, "splits": splits})


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Read `<root>/manifest.json` of a folder or a dataset URL; a clear error when missing or incomplete."""
    if is_url(root):
        from shards.read import open_url  # shards.read imports this module

        with open_url(f"{str(root).rstrip('/')}/{MANIFEST}") as f:
            return Manifest.from_dict(json.loads(f.read()))
    root = Path(root)
    if not root.is_dir():
        raise ShardsError(f"{root}: no such dataset folder; check the path or build the dataset first")
    path = root / MANIFEST
    if not path.is_file():
        raise ShardsError(
            f"{root}: no {MANIFEST}, so the dataset is incomplete (a build was interrupted or is still "
            "running); re-run the command that builds it to finish it"
        )
    try:
        data = json.loads(path.read_text())
        manifest = Manifest.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardsError(f"{path}: not a valid manifest ({exc}); rebuild the dataset") from exc
    if manifest.format_version > FORMAT_VERSION:
        raise ShardsError(
            f"{path}: format version {manifest.format_version} is newer than this toolkit's "
            f"{FORMAT_VERSION}; upgrade the toolkit"
        )
    return manifest
