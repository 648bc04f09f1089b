"""Every streamed or cached byte is checked against the manifest: sha256 per shard, samples per shard and
per split, before any sample of a bad shard is used (local folders and a fake Hub on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import FakeHub
from shards_fixtures import build, index_samples, make_writer
from train_fixtures import build_dataset, tiny_cfg

import shards.httpio
from shards import ShardsError, StreamingBatches, load_manifest, load_split
from shards.checked import MIN_SAMPLE_BYTES
from shards.errors import ToolkitError
from shards.verify import verify_dataset
from train.data.datasets import open_dataset, read_split
from train.run.loop import run_training

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build(tmp_path_factory.mktemp("checked") / "ds", train=300, test=100)


@pytest.fixture
def hub(monkeypatch):
    hub = FakeHub().start()
    hub.endpoint(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(shards.httpio, "BACKOFF_S", 0.01)
    yield hub
    hub.stop()


def _relabelled(dataset: Path, out: Path, shard: str) -> Path:
    """A copy of `dataset` whose `shard` holds the same images under other labels (same size, other sha256):
    a server re-published with other labels but the old manifest."""
    other = make_writer(out / "other", train=300, test=100)
    other.prepare()
    for spec in other.pending():
        other.write_shard(spec, ({**s, "cls": (s["cls"] + 1) % 10} for s in index_samples(spec)))
    copy = shutil.copytree(dataset, out / "served")
    shutil.copy(out / "other" / shard, copy / shard)
    assert (copy / shard).stat().st_size == (dataset / shard).stat().st_size
    return copy


def _edit_manifest(root: Path, edit) -> Path:
    data = json.loads((root / "manifest.json").read_text())
    edit(data)
    (root / "manifest.json").write_text(json.dumps(data))
    return root


def _hub_urls(split="train"):
    return [f"hf://datasets/me/x/{e.file}" for e in load_manifest("hf://datasets/me/x").splits[split].shards]


def test_a_relabelled_remote_shard_fails_before_its_samples_are_batched(hub, dataset, tmp_path):
    hub.add("me/x", _relabelled(dataset, tmp_path, "data/train-000001.tar"))
    stream = iter(StreamingBatches(_hub_urls(), 100, shuffle=False))
    assert next(stream)["index"].tolist() == list(range(100))  # shard 0 is as the manifest says
    with pytest.raises(
        ShardsError,
        match=r"train-000001\.tar: corrupt: sha256 [0-9a-f]{12}\.\.\. but the manifest "
        r"says [0-9a-f]{12}\.\.\.; the shard changed since the manifest was written",
    ):
        next(stream)


def test_the_trainer_streaming_a_relabelled_remote_shard_stops_with_one_line(hub, tmp_path):
    ds = build_dataset(tmp_path / "templates", train=200, test=100)
    served = shutil.copytree(ds, tmp_path / "served")
    first = (served / "data/train-000001.tar").read_bytes()
    (served / "data/train-000001.tar").write_bytes(first[:-1] + bytes([first[-1] ^ 1]))
    hub.add("me/x", served)
    cfg = tiny_cfg(
        "hf://datasets/me/x",
        tmp_path / "run",
        mode="ideal",
        data_path="stream",
        steps=8,
        batch_size=20,
        eval_train_samples=20,
    )
    with pytest.raises(ToolkitError, match=r"train-000001\.tar: corrupt: sha256 .* but the manifest says"):
        run_training(cfg, progress=False)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_the_train_cli_streaming_a_changed_shard_through_a_worker_exits_2(hub, tmp_path):
    ds = build_dataset(tmp_path / "templates", train=200, test=100)
    served = shutil.copytree(ds, tmp_path / "served")
    first = (served / "data/train-000001.tar").read_bytes()
    (served / "data/train-000001.tar").write_bytes(first[:-1] + bytes([first[-1] ^ 1]))
    hub.add("me/x", served)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": "hf_test",
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "train",
            "run",
            "--data",
            "hf://datasets/me/x",
            "--data-path",
            "stream",
            "--mode",
            "ideal",
            "--steps",
            "8",
            "--batch-size",
            "20",
            "--model",
            "mlp",
            "--mlp-widths",
            "16",
            "--device",
            "cpu",
            "--eval-schedule",
            "every:4",
            "--eval-train-samples",
            "20",
            "--num-workers",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: hf://datasets/me/x/data/train-000001.tar: corrupt: sha256 ")
    )
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_remote_shard_cut_at_a_member_boundary_is_refused(hub, dataset, tmp_path):
    served = shutil.copytree(dataset, tmp_path / "served")
    shard = served / "data/train-000000.tar"
    whole = shard.read_bytes()
    cut = whole[: whole.index(b"000000090.png")]  # the first member of sample 90 starts here, at a 512 boundary
    assert len(cut) % 512 == 0 and len(cut) >= 100 * MIN_SAMPLE_BYTES
    shard.write_bytes(cut)
    hub.add("me/x", served)
    with pytest.raises(ShardsError, match=r"train-000000\.tar: cut short: [0-9,]+ bytes where the manifest says"):
        next(iter(StreamingBatches(_hub_urls(), 100, shuffle=False)))

    def edit(m):  # the manifest edited to the cut shard's size and hash: only its sample count is left
        m["splits"]["train"]["shards"][0].update(bytes=len(cut), sha256=hashlib.sha256(cut).hexdigest())

    _edit_manifest(served, edit)
    with pytest.raises(ShardsError, match=r"train-000000\.tar: 90 samples where the manifest says 100"):
        next(iter(StreamingBatches(_hub_urls(), 100, shuffle=False)))


def test_an_empty_shard_whose_hash_an_edited_manifest_records_is_refused(dataset, tmp_path):
    copy = shutil.copytree(dataset, tmp_path / "ds")
    (copy / "data/test-000000.tar").write_bytes(b"")
    empty = hashlib.sha256(b"").hexdigest()
    _edit_manifest(copy, lambda m: m["splits"]["test"]["shards"][0].update(bytes=0, sha256=empty))
    with pytest.raises(ShardsError, match=r"splits\.test\.shards\[0\] claims 100 samples in 0 bytes"):
        open_dataset(str(copy), stream=True, verify=True)
    with pytest.raises(ShardsError, match=r"splits\.test\.shards\[0\] claims 100 samples in 0 bytes"):
        StreamingBatches([str(copy / "data/test-000000.tar")], 10)
    cfg = tiny_cfg(copy, tmp_path / "run", data_path="stream", steps=4)  # the trainer: no run starts
    with pytest.raises(ToolkitError, match=r"splits\.test\.shards\[0\] claims 100 samples in 0 bytes"):
        run_training(cfg, progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "count, message",
    [
        (101, r"splits\.test\.count is 101, but its shards hold 100 samples"),
        (10**12, r"splits\.test\.count is 1,000,000,000,000, but its shards hold 100 samples"),
    ],
)
def test_the_decoded_cache_never_sizes_a_split_by_its_count_alone(dataset, tmp_path, count, message):
    copy = _edit_manifest(shutil.copytree(dataset, tmp_path / "ds"), lambda m: m["splits"]["test"].update(count=count))
    with pytest.raises(ShardsError, match=message):
        load_split(copy, "test", cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_inflated_shard_entries_are_refused_before_the_cache_is_sized(dataset, tmp_path):
    def inflate(m):  # count, samples and bytes all edited to agree: only the file's real size tells
        m["splits"]["test"]["count"] = 10**12
        m["splits"]["test"]["shards"][0].update(samples=10**12, bytes=10**12 * MIN_SAMPLE_BYTES)

    copy = _edit_manifest(shutil.copytree(dataset, tmp_path / "ds"), inflate)
    with pytest.raises(ShardsError, match=r"test-000000\.tar: [0-9,]+ bytes, the manifest says 2,048,000,000,000,000"):
        load_split(copy, "test", cache_dir=tmp_path / "cache", progress=False)


def test_streamed_eval_rows_are_all_checked_samples(dataset, tmp_path):
    ds = open_dataset(str(dataset), stream=True, verify=False)
    images, labels = read_split(ds, "train", None, 250, stream=True)
    cached = load_split(dataset, "train", cache_dir=tmp_path, progress=False)
    assert (images == cached.images[:250]).all() and (labels == cached.labels[:250]).all()


# --- `shards fetch`: a cached shard is kept only when its sha256 matches ------------------------------------


def _fetch(url: str, capsys) -> tuple[int, str]:
    from shards.cli import main

    code = main(["fetch", url])
    return code, capsys.readouterr()


def test_fetch_after_a_relabelled_republish_downloads_the_changed_shards(hub, dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    hub.add("me/x", dataset)
    code, out = _fetch("hf://datasets/me/x", capsys)
    local = Path(out.out.strip())
    assert code == 0 and verify_dataset(local).ok
    republished = make_writer(tmp_path / "v2", train=300, test=100)  # same images and sizes, other labels
    republished.prepare()
    for spec in republished.pending():
        republished.write_shard(spec, ({**s, "cls": (s["cls"] + 1) % 10} for s in index_samples(spec)))
    republished.finalize()
    hub.add("me/x", tmp_path / "v2")
    code, out = _fetch("hf://datasets/me/x", capsys)
    assert code == 0 and Path(out.out.strip()) == local
    for entry in load_manifest(tmp_path / "v2").splits["train"].shards:
        assert (local / entry.file).read_bytes() == (tmp_path / "v2" / entry.file).read_bytes()
    assert verify_dataset(local).ok


def test_fetch_rehashes_a_complete_cached_copy(hub, dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    served = shutil.copytree(dataset, tmp_path / "served")
    hub.add("me/x", served)
    local = Path(_fetch("hf://datasets/me/x", capsys)[1].out.strip())
    shard = local / "data/train-000002.tar"
    whole = shard.read_bytes()
    shard.write_bytes(whole[:600] + bytes([whole[600] ^ 1]) + whole[601:])  # same size, one bit flipped
    code, _ = _fetch("hf://datasets/me/x", capsys)
    assert code == 0 and shard.read_bytes() == whole and hub.served("data/train-000002.tar") == 2
    shard.write_bytes(b"x" * len(whole))  # now the server's copy is damaged too: one line, exit 2
    (served / "data/train-000002.tar").write_bytes(b"y" * len(whole))
    code, out = _fetch("hf://datasets/me/x", capsys)
    assert code == 2 and out.err.count("error:") == 1 and "Traceback" not in out.err
    assert out.err.splitlines()[-1].startswith("error: hf://datasets/me/x/data/train-000002.tar: sha256 ")
    assert not (local / "manifest.json").exists()  # the cached copy is no longer called complete
