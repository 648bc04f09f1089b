"""The decoded cache lives in the user cache directory, keyed by the dataset's config hash: a read-only
dataset folder trains, and nothing is ever written into it."""

import os
import stat
from pathlib import Path

import pytest
from train_fixtures import build_dataset

from shards import load_manifest
from shards.cachedir import CACHE_ENV, decoded_cache_dir, user_cache_root
from train.__main__ import main


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def make_read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def read_only_dataset(tmp_path):
    root = build_dataset(tmp_path / "ds", train=64, test=32, per_shard=16)
    make_read_only(root)
    yield root
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_a_read_only_dataset_trains_and_is_left_untouched(read_only_dataset, tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV)  # restored afterwards: --cache-dir sets it for this process
    before = snapshot(read_only_dataset)
    cache = tmp_path / "my-cache"
    args = [
        "run",
        "--data",
        str(read_only_dataset),
        "--mode",
        "real",
        "--n",
        "32",
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--model",
        "mlp",
        "--mlp-widths",
        "16",
        "--eval-schedule",
        "every:2",
        "--eval-train-samples",
        "32",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--no-progress",
        "--data-path",
        "memory",
        "--cache-dir",
        str(cache),
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 0
    assert os.environ[CACHE_ENV] == str(cache)
    decoded = decoded_cache_dir(load_manifest(read_only_dataset))
    assert decoded.parent == cache / "decoded"
    assert sorted(p.name.split("-")[0] for p in decoded.glob("*-images.npy")) == ["test", "train"]
    assert snapshot(read_only_dataset) == before


def test_the_cache_root_follows_the_variable_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a"))
    assert user_cache_root() == tmp_path / "a"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert user_cache_root() == tmp_path / "x" / "deep-bootstrap"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert user_cache_root() == tmp_path / "h" / ".cache" / "deep-bootstrap"
