"""The `build` command's settings: one frozen dataclass, validated before any image is read."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dogbird.errors import DogbirdError

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
            ("--workers", self.workers, self.workers >= 1, ">= 1"),
        ]
        for flag, value, ok, rule in checks:
            if not ok:
                raise DogbirdError(f"{flag}={value}: must be {rule}")
        if self.center_crop and not 0 < self.center_crop <= self.size:
            raise DogbirdError(f"--center-crop={self.center_crop}: larger than --size={self.size}; the crop is "
                               "taken from the resized image, so give --size >= the crop")
        for r in self.res:
            if r < 1:
                raise DogbirdError(f"--res={r}: must be >= 1 pixel")
        return self

    def image_config(self) -> dict[str, Any]:
        """What decides the bytes of each image (part of the dataset's config hash)."""
        return {"size": self.size, "quality": self.quality, "center_crop": self.center_crop}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "res": list(self.res)}
