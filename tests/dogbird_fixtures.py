"""Tiny fake ImageNets in every layout dogbird reads, built in code from one list of images.

Real wnids: hunting dogs, birds, dogs that are not hunting dogs and a fish, so labels and leaks can be
checked. The oddities of the real ImageNet are there too: a CMYK JPEG, a greyscale one, a PNG named
.JPEG, an RGBA PNG, EXIF rotation, and truncated files (one per split) that must be skipped and listed.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dogbird.classes import imagenet_wnids

DOGS = ["n02088094", "n02099601"]  # Afghan hound (160), golden retriever (207): under hunting_dog.n.01
BIRDS = ["n01514859", "n01530575"]  # hen (8), brambling (10): under bird.n.01
# Chihuahua, German shepherd, Shetland sheepdog (dogs, not hunting dogs) and tench: must never enter.
OTHERS = ["n02085620", "n02106662", "n02105855", "n01440764"]
EXIF_ID = "n02099601_1"  # stored 40x20 with orientation 6: upright it is 20 wide, 40 high
TRUNCATED = {"train": "n01530575_2", "test": "ILSVRC2012_val_00000004"}


@dataclass(frozen=True)
class FakeImage:
    source_id: str
    wnid: str
    data: bytes


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def _pixels(index: int, width: int, height: int) -> Image.Image:
    """An image whose colours follow from its index (a gradient, so resizing has something to do)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 5 + index * 40) % 256, (y * 7 + index * 15) % 256, np.full_like(x, index * 30 % 256)], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def _image_bytes(source_id: str, index: int) -> bytes:
    image = _pixels(index, 24 + index % 5 * 4, 20 + index % 3 * 6)
    if source_id == EXIF_ID:
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 CW to view
        return _encode(_pixels(index, 40, 20), "JPEG", quality=90, exif=exif)
    special = {
        "n02088094_0": lambda: _encode(image.convert("CMYK"), "JPEG", quality=90),
        "n02088094_1": lambda: _encode(image, "PNG"),  # a PNG named .JPEG, like n02105855_2933
        "n01514859_0": lambda: _encode(image.convert("L"), "JPEG", quality=90),
        "n01514859_1": lambda: _encode(image.convert("RGBA"), "PNG"),
        "ILSVRC2012_val_00000002": lambda: _encode(image.convert("CMYK"), "JPEG", quality=90),
    }
    data = special.get(source_id, lambda: _encode(image, "JPEG", quality=90))()
    return data[: len(data) // 2] if source_id in TRUNCATED.values() else data


def fake_imagenet(train_per_class: int = 3, val_per_class: int = 2) -> dict[str, list[FakeImage]]:
    """{"train": [...], "val": [...]}: every class of DOGS + BIRDS + OTHERS, val ids interleaved by class."""
    wnids = DOGS + BIRDS + OTHERS
    train = [FakeImage(f"{w}_{i}", w, b"") for w in wnids for i in range(train_per_class)]
    val = [
        FakeImage(f"ILSVRC2012_val_{n:08d}", w, b"")
        for n, (i, w) in enumerate(((i, w) for i in range(val_per_class) for w in wnids), start=1)
    ]
    return {
        split: [FakeImage(im.source_id, im.wnid, _image_bytes(im.source_id, k)) for k, im in enumerate(images)]
        for split, images in (("train", train), ("val", val))
    }


def dogbird_counts(images: dict[str, list[FakeImage]]) -> dict[str, list[int]]:
    """Expected [hunting dogs, birds] per output split: the DogBird images that are not truncated."""
    out = {}
    for split, folder in (("train", "train"), ("test", "val")):
        kept = [im for im in images[folder] if im.source_id != TRUNCATED[split]]
        out[split] = [sum(im.wnid in DOGS for im in kept), sum(im.wnid in BIRDS for im in kept)]
    return out


def write_folder(root: Path, images, val: str = "wnid", kaggle_nesting: bool = False) -> Path:
    """ILSVRC2012 folders; val in wnid folders, or flat with `devkit` or `kaggle` labels."""
    base = root / "ILSVRC" / "Data" / "CLS-LOC" if kaggle_nesting else root
    for im in images["train"]:
        _write(base / "train" / im.wnid / f"{im.source_id}.JPEG", im.data)
    for im in images["val"]:
        _write(base / "val" / (im.wnid if val == "wnid" else "") / f"{im.source_id}.JPEG", im.data)
    if val == "kaggle":
        with open(root / "LOC_val_solution.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageId", "PredictionString"])
            writer.writerows([im.source_id, f"{im.wnid} 1 2 30 40 {im.wnid} 3 4 10 12"] for im in images["val"])
    elif val == "devkit":
        _write_devkit(root / "ILSVRC2012_devkit_t12" / "data", images["val"])
    return root


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def devkit_id(sorted_index: int) -> int:
    """A made-up 1-based ILSVRC2012_ID that is NOT the sorted-wnid index (as in the real devkit)."""
    return sorted_index * 7 % 1000 + 1


def _write_devkit(folder: Path, val: list[FakeImage]) -> None:
    import scipy.io  # deferred: heavy, only the devkit layout needs it

    wnids = imagenet_wnids()
    rows = [(devkit_id(i), w, 0) for i, w in enumerate(wnids)] + [(1001, "n00001740", 12)]  # a non-leaf synset
    synsets = np.empty((len(rows), 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for k, (sid, wnid, children) in enumerate(rows):
        synsets[k, 0] = (np.array([[sid]]), np.array([wnid]), np.array([[children]]))
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "meta.mat", {"synsets": synsets})
    index = {w: i for i, w in enumerate(wnids)}
    (folder / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{devkit_id(index[im.wnid])}\n" for im in val)
    )


def write_parquet(root: Path, images) -> Path:
    """The Hub's ILSVRC/imagenet-1k layout: data/{train,validation,test}-NNNNN-of-NNNNN.parquet."""
    import pyarrow as pa  # deferred: only the parquet layout needs it
    import pyarrow.parquet as pq

    index = {w: i for i, w in enumerate(imagenet_wnids())}
    (root / "data").mkdir(parents=True, exist_ok=True)
    parts = {
        "train": [images["train"][0::2], images["train"][1::2]],
        "validation": [images["val"]],
        "test": [images["val"][:2]],
    }
    for split, chunks in parts.items():
        for n, chunk in enumerate(chunks):
            table = pa.table(
                {
                    "image": [{"bytes": im.data, "path": f"{im.source_id}.JPEG"} for im in chunk],
                    "label": [-1 if split == "test" else index[im.wnid] for im in chunk],
                }
            )
            pq.write_table(table, root / "data" / f"{split}-{n:05d}-of-{len(chunks):05d}.parquet", row_group_size=4)
    return root


def write_wds(root: Path, images) -> Path:
    """timm/imagenet-1k-wds: imagenet1k-{train-NNNN,validation-NN}.tar written by webdataset (PAX headers)."""
    import webdataset as wds  # deferred: only the WebDataset layout needs it

    index = {w: i for i, w in enumerate(imagenet_wnids())}
    root.mkdir(parents=True, exist_ok=True)
    parts = {"train-0000": images["train"][:10], "train-0001": images["train"][10:], "validation-00": images["val"]}
    for name, chunk in parts.items():
        with wds.TarWriter(str(root / f"imagenet1k-{name}.tar")) as sink:
            for k, im in enumerate(chunk):
                meta = {"filename": f"{im.wnid}/{im.source_id}.JPEG", "label": index[im.wnid], "width": 1, "height": 1}
                sink.write({"__key__": f"{name}-{k:06d}", "jpg": im.data, "cls": index[im.wnid], "json": meta})
    (root / "_info.json").write_text(json.dumps({"name": "fake"}))
    return root


def shard_hashes(out: Path) -> dict[str, str]:
    """file -> sha256 of every shard of a finished dataset."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {e["file"]: e["sha256"] for s in manifest["splits"].values() for e in s["shards"]}
