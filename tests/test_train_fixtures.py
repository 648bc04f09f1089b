"""Tiny datasets for the trainer's tests, written with the real `shards.DatasetWriter`.

Each image shows its label's fixed binary template (so a small model fits them within a few hundred
steps) plus faint noise seeded by its index (so every sample's bytes differ and follow from its index).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from shards import DatasetWriter

NUM_CLASSES = 10


def label_of(index: int, split: str) -> int:
    return (index * 7 + (3 if split == "test" else 0)) % NUM_CLASSES


def template(label: int, size: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + label)
    return (rng.random((size, size, channels)) < 0.5).astype(np.uint8) * 200


def sample_image(index: int, split: str, size: int = 8, channels: int = 1) -> np.ndarray:
    noise = np.random.default_rng([index, split == "test"]).integers(0, 40, (size, size, channels))
    return (template(label_of(index, split), size, channels) + noise).astype(np.uint8)


def build_dataset(out: Path, train: int = 400, test: int = 100, size: int = 8, channels: int = 1,
                  per_shard: int = 100, splits: dict[str, int] | None = None) -> Path:
    """Write a dataset of `train`/`test` samples (or the given `splits`) and return its folder."""
    splits = splits or {"train": train, "test": test}
    writer = DatasetWriter(out, config={"kind": "train-test-templates", "size": size, "channels": channels},
                           class_names=[f"c{i}" for i in range(NUM_CLASSES)], splits=splits,
                           samples_per_shard=per_shard)
    writer.prepare()
    for spec in writer.pending():
        samples = ({"image": sample_image(i, spec.split, size, channels), "cls": label_of(i, spec.split),
                    "json": {"index": i}} for i in range(spec.first_index, spec.first_index + spec.count))
        writer.write_shard(spec, samples)
    assert writer.finalize() is not None
    return out


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def test_fixture_dataset_reads_back(tmp_path):
    from shards import load_manifest, load_split

    root = build_dataset(tmp_path / "ds", train=120, test=30, per_shard=50)
    manifest = load_manifest(root)
    assert manifest.splits["train"].count == 120 and len(manifest.splits["train"].shards) == 3
    arrays = load_split(root, "train", progress=False)
    assert arrays.images.shape == (120, 8, 8, 1)
    assert [int(v) for v in arrays.labels[:4]] == [label_of(i, "train") for i in range(4)]
    assert np.array_equal(arrays.images[17], sample_image(17, "train"))
