"""Tiny datasets whose pixels encode their index, written with the real shards writer (for tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from shards import DatasetWriter
from shards.card import CardInfo

CLASSES = [f"class{i}" for i in range(10)]


def index_image(index: int, size: int = 8, channels: int = 3) -> np.ndarray:
    """An image that encodes its index: row 0 holds the index's bytes, the rest a label-coloured fill."""
    image = np.full((size, size, channels), (index * 37) % 251, dtype=np.uint8)
    image[0, :4, 0] = np.frombuffer(int(index).to_bytes(4, "little"), dtype=np.uint8)
    return image


def label_of(index: int) -> int:
    return (index * 7) % len(CLASSES)


def index_samples(spec, size: int = 8, channels: int = 3, json_fields: bool = True):
    for i in range(spec.first_index, spec.first_index + spec.count):
        sample = {"image": index_image(i, size, channels), "cls": label_of(i)}
        if json_fields:
            sample["json"] = {"index": i, "score": round(i / 1000, 3), "source": f"s{i}"}
        yield sample


def make_writer(out: Path, train: int = 250, test: int = 50, per_shard: int = 100, **kw) -> DatasetWriter:
    return DatasetWriter(out, config={"kind": "index-images", "seed": 0}, class_names=CLASSES,
                         splits={"train": train, "test": test}, samples_per_shard=per_shard,
                         card=CardInfo(pretty_name="Index images"), **kw)


def build(out: Path, size: int = 8, channels: int = 3, **kw) -> Path:
    writer = make_writer(out, **kw)
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, index_samples(spec, size, channels))
    assert writer.finalize() is not None
    return out
