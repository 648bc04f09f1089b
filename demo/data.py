"""The demo's real data: scikit-learn's bundled handwritten digits, split 70/30 by a seed.

`load_digits` holds 1,797 real 8x8 greyscale digits with values 0..16. We store them as uint8 0..255
(x * 255 / 16, rounded) in NHWC with one channel, the layout every other part of the toolkit uses.
The split is stratified per class and depends only on the seed, so the diffusion model, the labeler
and the trainer's extra test set all agree on which digits were held out.

    python -m demo real-digits --out out/real-digits   # the split as a shards dataset
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shards import CardInfo, DatasetWriter
from shards.manifest import MIN_SHARDS

DEFAULT_SPLIT_SEED = 0
TRAIN_FRACTION = 0.7
CLASS_NAMES = [str(d) for d in range(10)]
SOURCE = "sklearn.datasets.load_digits"


@dataclass(frozen=True)
class DigitsSplit:
    """The real digits, split into train and holdout. Images uint8 (N, 8, 8, 1), labels int64 (N,)."""

    seed: int
    train_images: np.ndarray
    train_labels: np.ndarray
    train_indices: np.ndarray
    holdout_images: np.ndarray
    holdout_labels: np.ndarray
    holdout_indices: np.ndarray

    def describe(self) -> dict:
        """What a model folder records about the data it was trained on (enough to rebuild it)."""
        return {
            "source": SOURCE,
            "split_seed": self.seed,
            "train_fraction": TRAIN_FRACTION,
            "train_count": int(len(self.train_indices)),
            "holdout_count": int(len(self.holdout_indices)),
            "indices_sha256": indices_digest(self.train_indices, self.holdout_indices),
            "holdout_indices": [int(i) for i in self.holdout_indices],
        }


def digits_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map load_digits' 0..16 intensities to uint8 0..255 (x * 255 / 16, rounded half to even)."""
    return np.rint(np.asarray(values, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)


def load_all_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 (N, 8, 8, 1) and int64 labels, in load_digits' order."""
    from sklearn.datasets import load_digits  # heavy (scipy); only this function needs it

    bunch = load_digits()
    images = digits_to_uint8(bunch.images)[..., None]
    return images, bunch.target.astype(np.int64)


def split_indices(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/holdout indices: per class, a seeded permutation cut at 70%. Both sorted."""
    rng = np.random.default_rng(seed)
    train, holdout = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cut = int(round(TRAIN_FRACTION * len(members)))
        train.append(members[:cut])
        holdout.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(holdout))


def load_digits_split(seed: int = DEFAULT_SPLIT_SEED) -> DigitsSplit:
    """The real digits split 70/30 (train/holdout) by `seed`; the same seed always gives the same split."""
    images, labels = load_all_digits()
    train, holdout = split_indices(labels, seed)
    return DigitsSplit(
        seed=seed,
        train_images=images[train],
        train_labels=labels[train],
        train_indices=train,
        holdout_images=images[holdout],
        holdout_labels=labels[holdout],
        holdout_indices=holdout,
    )


def indices_digest(train_indices: np.ndarray, holdout_indices: np.ndarray) -> str:
    """A short fingerprint of a split, to check that two artefacts used the same one."""
    payload = np.concatenate([train_indices, [-1], holdout_indices]).astype("<i8").tobytes()
    return hashlib.sha256(payload).hexdigest()[:16]


def _real_samples(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, first: int, count: int):
    for i in range(first, first + count):
        meta = {"source": SOURCE, "source_index": int(indices[i])}
        yield {"image": images[i], "cls": int(labels[i]), "json": meta}


def write_real_digits(
    out_dir: str | Path, seed: int = DEFAULT_SPLIT_SEED, samples_per_shard: int = 500, overwrite: bool = False
):
    """Write the real split as a shards dataset: `train` = the 70% train part, `test` = the holdout.

    The trainer reads `test` with `--extra-test` to measure models trained on synthetic digits against
    real ones. Returns the manifest.
    """
    split = load_digits_split(seed)
    parts = {
        "train": (split.train_images, split.train_labels, split.train_indices),
        "test": (split.holdout_images, split.holdout_labels, split.holdout_indices),
    }
    config = {
        "kind": "real-digits",
        "source": SOURCE,
        "split_seed": seed,
        "train_fraction": TRAIN_FRACTION,
        "samples_per_shard": samples_per_shard,
    }
    writer = DatasetWriter(
        out_dir,
        config=config,
        class_names=CLASS_NAMES,
        splits={name: len(part[1]) for name, part in parts.items()},
        samples_per_shard=samples_per_shard,
        image_ext="png",
        card=_real_card(seed),
        overwrite=overwrite,
        min_shards=MIN_SHARDS,
    )
    writer.prepare()
    for spec in writer.pending():
        images, labels, indices = parts[spec.split]
        writer.write_shard(spec, _real_samples(images, labels, indices, spec.first_index, spec.count))
    return writer.finalize()


def _real_card(seed: int):
    return CardInfo(
        pretty_name="Real handwritten digits (scikit-learn load_digits), 70/30 split",
        description=(
            "The 1,797 real 8x8 greyscale digits bundled with scikit-learn (the UCI Optical Recognition "
            f"of Handwritten Digits test set), scaled to uint8, split 70/30 per class with seed {seed}. "
            "`test` is the holdout that the demo's diffusion model and labeler never saw."
        ),
        license="cc-by-4.0",
        annotations_creators=("expert-generated",),
        tags=("deep-bootstrap", "webdataset", "digits"),
    )
