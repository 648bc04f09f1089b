"""Tiny datasets whose pixels encode their index, written with the real shards writer (for tests)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from shards import DatasetWriter, iter_samples, load_manifest
from shards.card import CardInfo
from shards.codec import encode_image, encode_json
from shards.tario import tar_end, tar_member

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
    return DatasetWriter(
        out,
        config={"kind": "index-images", "seed": 0},
        class_names=CLASSES,
        splits={"train": train, "test": test},
        samples_per_shard=per_shard,
        card=CardInfo(pretty_name="Index images"),
        **kw,
    )


def build(out: Path, size: int = 8, channels: int = 3, **kw) -> Path:
    writer = make_writer(out, **kw)
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, index_samples(spec, size, channels))
    assert writer.finalize() is not None
    return out


# --- damaged shards (test_shards_safety, test_shards_bitdepth) ---------------------------------------
def edit_manifest(root, edit) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def rewrite_shard(root, file: str, members: list[bytes]) -> None:
    """Replace a shard by these tar members and record its new size and sha256, so only its content is bad."""
    data = b"".join(members) + tar_end()
    (root / file).write_bytes(data)

    def update(manifest):
        for split in manifest["splits"].values():
            for entry in split["shards"]:
                if entry["file"] == file:
                    entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()

    edit_manifest(root, update)


def sample_members(
    index: int, image: bytes | None = None, cls: int | None = None, meta: bytes | None = None
) -> list[bytes]:
    """A sample as the fixtures write it (index_samples), but for the image, label or json bytes given."""
    key = f"{index:09d}"
    image = encode_image(index_image(index), "png") if image is None else image
    label = label_of(index) if cls is None else cls
    meta = (
        encode_json({"index": index, "score": round(index / 1000, 3), "source": f"s{index}"}) if meta is None else meta
    )
    return [
        tar_member(f"{key}.png", image),
        tar_member(f"{key}.cls", str(label).encode()),
        tar_member(f"{key}.json", meta),
    ]


def shard_with(first: int, count: int, changed: dict[int, dict]) -> list[bytes]:
    """Members of a shard of `count` good samples from `first`, except those in `changed` (index -> kwargs)."""
    return [m for i in range(first, first + count) for m in sample_members(i, **changed.get(i, {}))]


# --- plain WebDataset tars (test_shards_import_wds, test_shards_croissant) ---------------------------
SIZES = {"train": 7, "test": 3}


def pixels(split: str, index: int, mode: str) -> np.ndarray:
    rng = np.random.default_rng([len(split), index])
    return rng.integers(0, 256, (6, 5) if mode == "L" else (6, 5, 3), dtype=np.uint8)


def write_wds(folder, mode: str = "L"):
    """WebDataset tars as webdataset's own TarWriter writes them: KEY.png, KEY.cls; no card, no ClassLabel."""
    import webdataset as wds

    folder.mkdir(parents=True)
    for split, count in SIZES.items():
        with wds.TarWriter(str(folder / f"{split}-000000.tar")) as sink:
            for i in range(count):
                buf = io.BytesIO()
                Image.fromarray(pixels(split, i, mode), mode).save(buf, format="PNG")
                sink.write({"__key__": f"s{i:04d}", "png": buf.getvalue(), "cls": str(i % 3).encode()})
    return folder


# --- mlcroissant's records vs ours (test_shards_croissant, test_cifar5m_generate) -------------------
# Loads every record set in a fresh process: mlcroissant reads CROISSANT_CACHE (where it extracts tars) at import.
LOAD = """
import hashlib, json, sys
import numpy as np
import mlcroissant as mlc
ds = mlc.Dataset(jsonld=sys.argv[1])
out = {}
for rs in ds.metadata.record_sets:
    rows = []
    for r in ds.records(record_set=rs.uuid):
        rows.append({k.split("/")[-1]: hashlib.sha256(np.asarray(v).tobytes()).hexdigest() if hasattr(v, "mode")
                     else v.decode() if isinstance(v, bytes) else v for k, v in r.items()})
    out[rs.uuid] = rows
print(json.dumps(out))
"""


def mlcroissant_records(root: Path, cache: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, str(root / "croissant.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "CROISSANT_CACHE": str(cache), "HOME": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def our_records(root: Path, split: str) -> dict[str, tuple[str, int]]:
    files = [root / f for f in load_manifest(root).splits[split].shard_files()]
    return {
        key: (hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(), cls)
        for key, image, cls, _ in iter_samples(files)
    }


def check_equal(root: Path, cache: Path) -> None:
    manifest = load_manifest(root)
    records = mlcroissant_records(root, cache)
    assert records["class_names"] == [{"index": i, "name": n} for i, n in enumerate(manifest.class_names)]
    for split in manifest.splits:
        images = {r["key"]: r["image"] for r in records[split]}
        labels = {r["key"]: r["label"] for r in records[f"{split}_labels"]}
        assert len(records[split]) == len(images) == len(labels) == manifest.splits[split].count
        assert {k: (images[k], labels[k]) for k in images} == our_records(root, split)
