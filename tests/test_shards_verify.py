"""`shards verify` catches every kind of damage, by name, and passes an intact dataset."""

import json
import shutil
import subprocess
import sys

import pytest
from shards_fixtures import build

from shards.verify import verify_dataset


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build(tmp_path_factory.mktemp("v") / "ds")


@pytest.fixture
def copy(pristine, tmp_path):
    dest = tmp_path / "ds"
    shutil.copytree(pristine, dest)
    return dest


def flip_byte(root):
    path = root / "data/train-000001.tar"
    data = bytearray(path.read_bytes())
    data[700] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(root):
    path = root / "data/train-000001.tar"
    path.write_bytes(path.read_bytes()[:-2000])


def remove(root):
    (root / "data/train-000001.tar").unlink()


def add_extra(root):
    shutil.copy(root / "data/test-000000.tar", root / "data/test-000001.tar")


def edit_count(root):
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["splits"]["train"]["count"] = 260
    (root / "manifest.json").write_text(json.dumps(manifest))


def edit_labels(root):
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["class_names"][0] = "cat"
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (flip_byte, "data/train-000001.tar: corrupt"),
        (truncate, "data/train-000001.tar: truncated"),
        (remove, "data/train-000001.tar: missing"),
        (add_extra, "data/test-000001.tar: extra file"),
        (edit_count, "split train: shards hold 250 samples, manifest says 260"),
        (edit_labels, "config hash mismatch"),
    ],
)
def test_verify_names_the_damage(copy, damage, expected):
    damage(copy)
    report = verify_dataset(copy)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems


def test_verify_cli_exit_codes(pristine, copy):
    ok = subprocess.run([sys.executable, "-m", "shards", "verify", str(pristine)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout and "300 samples" in ok.stdout
    truncate(copy)
    bad = subprocess.run([sys.executable, "-m", "shards", "verify", str(copy)], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL data/train-000001.tar: truncated" in bad.stdout


def test_info_and_missing_dataset_errors(pristine, tmp_path):
    info = subprocess.run(
        [sys.executable, "-m", "shards", "info", str(pristine), "--json"], capture_output=True, text=True
    )
    assert info.returncode == 0 and json.loads(info.stdout)["splits"]["train"]["samples"] == 250
    missing = subprocess.run(
        [sys.executable, "-m", "shards", "info", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such dataset folder" in missing.stderr and "Traceback" not in missing.stderr
