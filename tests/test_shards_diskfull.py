"""A full disk or a kill while writing shards or the decoded cache: one clear error, no temporary files left,
resumable; a missing shard on the memory path."""

import builtins
import errno
import os
import re
import socket
import subprocess
import sys
from collections import namedtuple

import pytest
from shards_fixtures import build, index_samples, make_writer

import shards.diskspace
import shards.writer
from shards import ShardsError, load_manifest, load_split

MESSAGE = re.compile(r"no space left on (.+): free ([\d,]+) MB and re-run; committed shards are kept")


def enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, "No space left on device")


class FillingFile:
    """A file whose writes fail with ENOSPC once `room` bytes were written: a disk that fills mid-shard."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            enospc()
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_disk_full_mid_shard_keeps_committed_shards_and_leaves_no_temp_file(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    writer = make_writer(out)
    writer.prepare()
    specs = writer.pending()
    writer.write_shard(specs[0], index_samples(specs[0]))
    committed = (out / specs[0].relpath).read_bytes()
    monkeypatch.setattr(
        shards.writer, "open", lambda path, mode="r": FillingFile(builtins.open(path, mode), 20_000), raising=False
    )
    with pytest.raises(ShardsError) as err:
        writer.write_shard(specs[1], index_samples(specs[1]))
    match = MESSAGE.fullmatch(str(err.value))
    assert match and match.group(1) == str(out)
    # the remaining 200 samples at the committed shard's bytes per sample
    per_sample = len(committed) / specs[0].count
    assert int(match.group(2).replace(",", "")) == -(-int(per_sample * 200) // 1_000_000)
    assert list((out / ".shards/tmp").iterdir()) == [], "no temporary (or zero-byte) file may be left"
    assert not (out / specs[1].relpath).exists() and (out / specs[0].relpath).read_bytes() == committed
    monkeypatch.undo()
    for spec in writer.pending():  # re-run once there is room: the same bytes as a build that never failed
        writer.write_shard(spec, index_samples(spec))
    writer.finalize()
    assert load_manifest(out).to_dict() == load_manifest(build(tmp_path / "clean")).to_dict()


def test_disk_full_while_writing_stats_is_the_same_clear_error(tmp_path, monkeypatch):
    writer = make_writer(tmp_path / "ds")
    writer.prepare()
    spec = writer.pending()[0]
    monkeypatch.setattr(shards.writer, "write_json_atomic", enospc)
    with pytest.raises(ShardsError, match=MESSAGE.pattern):
        writer.write_shard(spec, index_samples(spec))
    monkeypatch.undo()
    assert writer.pending()[0] == spec, "a shard without its stats file is not complete: it is made again"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build(tmp_path_factory.mktemp("full") / "ds", train=300, test=50)


def test_cache_refuses_to_start_without_room(dataset, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shards.diskspace.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ShardsError) as err:
        load_split(dataset, "train", cache_dir=tmp_path / "c", progress=False)
    need = 300 * 8 * 8 * 3 + 8 * 300 + (1 << 20)  # images + labels + 1 MiB of slack
    assert str(err.value) == (
        f"no space left on {tmp_path / 'c'}: free {-(-(need - 1000) // 1_000_000)} MB and "
        "re-run; committed shards are kept"
    )
    assert list((tmp_path / "c").iterdir()) == []


def test_cache_build_that_fills_the_disk_is_a_clear_error_not_a_crash(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "pwrite", enospc)  # the rows' write(): where a full disk shows up
    with pytest.raises(ShardsError, match=MESSAGE.pattern):
        load_split(dataset, "train", cache_dir=tmp_path / "c", num_workers=1, progress=False)
    assert list((tmp_path / "c").iterdir()) == [], "no temporary cache file may be left"
    monkeypatch.undo()
    arrays = load_split(dataset, "train", cache_dir=tmp_path / "c", num_workers=2, progress=False)
    assert arrays.images.shape == (300, 8, 8, 3)


def test_cache_written_by_worker_processes_equals_the_one_written_inline(dataset, tmp_path):
    one = load_split(dataset, "train", cache_dir=tmp_path / "one", num_workers=1, progress=False)
    two = load_split(dataset, "train", cache_dir=tmp_path / "two", num_workers=2, progress=False)
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert one.labels.tolist() == two.labels.tolist()


def test_temp_files_of_killed_cache_builds_are_removed(dataset, tmp_path):
    cache = tmp_path / "c"
    cache.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a finished process: its pid names nobody now
    host = socket.gethostname()
    stale = cache / f".train-0123-images.npy.{host}-{dead.pid}.tmp.npy"
    live = cache / f".train-0123-images.npy.{host}-{os.getpid()}.tmp.npy"
    other_host = cache / f".train-0123-images.npy.elsewhere-{dead.pid}.tmp.npy"
    for path in (stale, live, other_host):
        path.write_bytes(b"\0" * 1000)
    load_split(dataset, "train", cache_dir=cache, num_workers=1, progress=False)
    assert not stale.exists() and live.exists() and other_host.exists()


def test_a_missing_shard_is_a_clear_error_on_the_memory_path(tmp_path):
    root = build(tmp_path / "ds", train=200, test=50)
    (root / "data/train-000001.tar").unlink()
    with pytest.raises(
        ShardsError,
        match=r"train-000001.tar: missing, but the manifest lists it; re-run the command "
        "that made the dataset",
    ):
        load_split(root, "train", cache_dir=tmp_path / "c", progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_disk_full_while_finishing_the_dataset_is_the_same_clear_error(tmp_path, monkeypatch):
    """Every shard committed, then the card (or manifest, config.json) cannot be written: one line, no
    manifest; the re-run finishes the dataset."""
    out = build(tmp_path / "ds")
    (out / "manifest.json").unlink()
    (out / "README.md").unlink()
    monkeypatch.setattr(shards.writer, "write_text_atomic", enospc)
    writer = make_writer(out)
    with pytest.raises(ShardsError) as err:
        writer.prepare()
        writer.finalize()
    assert MESSAGE.fullmatch(str(err.value)).group(1) == str(out)
    assert not (out / "manifest.json").exists()
    monkeypatch.undo()
    assert make_writer(out).finalize() is not None and not [p for p in out.rglob("*.tmp*")]


def test_disk_full_during_fetch_is_one_line_and_the_rerun_completes(tmp_path, monkeypatch, capsys):
    from hub_server import FakeHub

    import shards.remote
    from shards.cli import main

    hub = FakeHub().start()
    try:
        hub.add("me/tiny", build(tmp_path / "ds"))
        hub.endpoint(monkeypatch)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        room = iter([10**9, 100])  # the first shard (test-000000) fits, the second fills the disk
        monkeypatch.setattr(
            shards.remote,
            "open",
            lambda path, mode="r": FillingFile(builtins.open(path, mode), next(room, 0)),
            raising=False,
        )
        assert main(["fetch", "hf://datasets/me/tiny"]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error", "Traceback"))]
        assert len(err) == 1 and MESSAGE.fullmatch(err[0].removeprefix("error: "))
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".part")]
        monkeypatch.setattr(shards.remote, "open", builtins.open, raising=False)
        assert main(["fetch", "hf://datasets/me/tiny"]) == 0
        assert hub.served("data/test-000000.tar") == 1  # kept from the first run, not fetched again
    finally:
        hub.stop()
