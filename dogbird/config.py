"""The `build` command's settings: one frozen dataclass, validated before any image is read."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from dogbird.errors import DogbirdError
from shards.identity import FileRecord, InputIdentity, identity_of
from shards.manifest import MIN_SHARDS

# The paper's code trained on copies resized to shorter side 256 (then centre crop 224 at load time).
DEFAULT_SIZE = 256
DEFAULT_QUALITY = 95
# ~155K train images -> ~156 shards of ~25 MB (256 px JPEGs at q95 are ~25 KB); test 6,100 -> 7 shards.
DEFAULT_SAMPLES_PER_SHARD = 1000


@dataclass(frozen=True)
class BuildConfig:
    source: str
    out_dir: str
    seed: int = 0
    size: int = DEFAULT_SIZE
    quality: int = DEFAULT_QUALITY
    center_crop: int = 0
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD
    min_shards: int = MIN_SHARDS  # per split (shards.manifest.MIN_SHARDS)
    res: tuple[int, ...] = ()
    workers: int = 1
    ray: bool = False
    allow_missing_classes: bool = False
    overwrite: bool = False

    def validate(self) -> BuildConfig:
        checks = [
            ("--size", self.size, self.size >= 0, ">= 0 (0 keeps the original size)"),
            ("--quality", self.quality, 1 <= self.quality <= 100, "in 1..100"),
            ("--center-crop", self.center_crop, self.center_crop >= 0, ">= 0 (0: no crop)"),
            ("--samples-per-shard", self.samples_per_shard, self.samples_per_shard >= 1, ">= 1"),
            ("--min-shards", self.min_shards, self.min_shards >= 1, ">= 1"),
            ("--workers", self.workers, self.workers >= 1, ">= 1"),
        ]
        for flag, value, ok, rule in checks:
            if not ok:
                raise DogbirdError(f"{flag}={value}: must be {rule}")
        if self.center_crop and not 0 < self.center_crop <= self.size:
            raise DogbirdError(
                f"--center-crop={self.center_crop}: larger than --size={self.size}; the crop is "
                "taken from the resized image, so give --size >= the crop"
            )
        for r in self.res:
            if r < 1:
                raise DogbirdError(f"--res={r}: must be >= 1 pixel")
        return self

    def image_config(self) -> dict[str, Any]:
        """What decides the bytes of each image (part of the dataset's config hash)."""
        return {"size": self.size, "quality": self.quality, "center_crop": self.center_crop}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "res": list(self.res)}


def source_listing(files: Iterable[tuple[str, str]]) -> InputIdentity:
    """The local source files a build reads, as (path relative to SOURCE, local file) pairs, identified by
    relative path and size: a stat each, cheap for ImageNet's ~155K DogBird files, so a resume over a source
    whose files were replaced, added or removed is refused. Staged copies of a remote source are left out:
    it is identified by the ordered ids (`ids_sha256`) and its files are pruned after a build."""
    records = []
    for where, path in files:
        try:
            records.append(FileRecord(where, os.stat(path).st_size, None))
        except OSError as exc:
            raise DogbirdError(f"{where}: cannot read it ({exc.strerror}); check the source and re-run") from None
    return identity_of("source", records)
