"""croissant.json: mlcroissant validates it and loads records equal to our reader's, for a dataset written
by the writer (as generation does) and for an imported one; the card links it."""

import json
from pathlib import Path

import pytest
from shards_fixtures import build, check_equal, write_wds

from shards import load_manifest
from shards.cli import main

pytest.importorskip("mlcroissant", reason="mlcroissant is not installed (pip install '.[croissant]')")

ROOT = Path(__file__).resolve().parents[1]


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
