"""croissant.json: mlcroissant validates it and loads records equal to our reader's, for a dataset written
by the writer (as generation does) and for an imported one; the card links it."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shards_fixtures import build
from test_shards_import_wds import write_wds

from shards import iter_samples, load_manifest
from shards.cli import main

pytest.importorskip("mlcroissant", reason="mlcroissant is not installed (pip install '.[croissant]')")

ROOT = Path(__file__).resolve().parents[1]
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
    proc = subprocess.run([sys.executable, "-c", LOAD, str(root / "croissant.json")], capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "CROISSANT_CACHE": str(cache),
                                            "HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def our_records(root: Path, split: str) -> dict[str, tuple[str, int]]:
    files = [root / f for f in load_manifest(root).splits[split].shard_files()]
    return {key: (hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(), cls)
            for key, image, cls, _ in iter_samples(files)}


def check_equal(root: Path, cache: Path) -> None:
    manifest = load_manifest(root)
    records = mlcroissant_records(root, cache)
    assert records["class_names"] == [{"index": i, "name": n} for i, n in enumerate(manifest.class_names)]
    for split in manifest.splits:
        images = {r["key"]: r["image"] for r in records[split]}
        labels = {r["key"]: r["label"] for r in records[f"{split}_labels"]}
        assert len(records[split]) == len(images) == len(labels) == manifest.splits[split].count
        assert {k: (images[k], labels[k]) for k in images} == our_records(root, split)


def test_written_dataset_validates_and_loads_equal_records(tmp_path):
    root = build(tmp_path / "ds", train=30, test=10, per_shard=8)
    check_equal(root, tmp_path / "croissant-cache")
    assert "[`croissant.json`](croissant.json)" in (root / "README.md").read_text()


def test_imported_grey_dataset_validates_and_loads_equal_records(tmp_path):
    src = write_wds(tmp_path / "src")
    assert main(["import", str(src), "--out", str(tmp_path / "ds"), "--class-names", "a: 1,b,c"]) == 0
    check_equal(tmp_path / "ds", tmp_path / "croissant-cache")


def test_croissant_describes_every_shard_with_its_sha256(tmp_path):
    root = build(tmp_path / "ds", train=30, test=10, per_shard=8)
    meta = json.loads((root / "croissant.json").read_text())
    assert meta["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    tars = {d["contentUrl"]: d["sha256"] for d in meta["distribution"] if d["@type"] == "cr:FileObject"}
    assert tars == {e.file: e.sha256 for s in load_manifest(root).splits.values() for e in s.shards}
