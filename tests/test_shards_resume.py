"""A writer killed with SIGKILL at any moment, then re-run, gives the bytes of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shards_fixtures import build

CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from shards_fixtures import index_samples, make_writer
w = make_writer({out!r}, train=500, test=100, per_shard=100)
w.prepare()
for spec in w.pending():
    def slow(spec=spec):
        for s in index_samples(spec):
            time.sleep({delay})
            yield s
    w.write_shard(spec, slow())
w.finalize()
"""


def run_child(out: Path, delay: float) -> subprocess.Popen:
    code = CHILD.format(tests=str(Path(__file__).parent), out=str(out), delay=delay)
    return subprocess.Popen([sys.executable, "-c", code])


def tree_bytes(root: Path) -> dict:
    files = [root / "manifest.json", root / "README.md", root / "_info.json", *sorted((root / "data").iterdir())]
    return {p.name: p.read_bytes() for p in files}


def wait_for(predicate, timeout_s=60):
    end = time.time() + timeout_s
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.005)
    raise TimeoutError


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build(tmp_path_factory.mktemp("ref") / "ds", train=500, test=100, per_shard=100)


@pytest.mark.parametrize("kill_point", ["mid-first-shard", "after-2-shards", "mid-4th-shard", "before-manifest"])
def test_sigkill_then_rerun_is_identical(tmp_path, reference, kill_point):
    out = tmp_path / "ds"
    stats = out / ".shards"
    tmp = stats / "tmp"
    conditions = {
        "mid-first-shard": lambda: tmp.is_dir() and any(p.stat().st_size > 20_000 for p in tmp.iterdir()),
        "after-2-shards": lambda: len(list(stats.glob("train-*.json"))) >= 2,
        "mid-4th-shard": lambda: len(list(stats.glob("train-*.json"))) >= 3 and any(tmp.iterdir()),
        "before-manifest": lambda: (stats / "test-000000.json").exists() or (out / "data/test-000000.tar").exists(),
    }
    child = run_child(out, delay=0.0005)
    try:
        wait_for(conditions[kill_point])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    if kill_point != "before-manifest":
        assert not (out / "manifest.json").exists()
    rerun = run_child(out, delay=0)
    assert rerun.wait(timeout=120) == 0
    assert tree_bytes(out) == tree_bytes(reference)
    assert not list(tmp.iterdir()), "stray temporary files must be removed on resume"


def test_rerun_of_complete_dataset_skips_everything(tmp_path):
    root = build(tmp_path / "ds")
    before = {p: p.stat().st_mtime_ns for p in (root / "data").iterdir()}
    from shards_fixtures import make_writer

    writer = make_writer(root)
    writer.prepare()
    assert writer.pending() == []
    assert {p: p.stat().st_mtime_ns for p in (root / "data").iterdir()} == before


def test_corrupted_shard_is_rebuilt_on_rerun(tmp_path):
    root = build(tmp_path / "ds")
    good = (root / "data/train-000001.tar").read_bytes()
    (root / "data/train-000001.tar").write_bytes(good[:-1000])
    from shards_fixtures import make_writer

    writer = make_writer(root)
    writer.prepare()
    assert [s.relpath for s in writer.pending()] == ["data/train-000001.tar"]
    build(root)
    assert (root / "data/train-000001.tar").read_bytes() == good


def test_disjoint_ranges_by_separate_workers_assemble_the_same_dataset(tmp_path, reference):
    """Slurm-array style: workers sharing only the folder each commit a range; a final run assembles."""
    from shards_fixtures import index_samples, make_writer

    out = tmp_path / "ds"
    for shard_range in [(0, 3), (3, 6)]:
        writer = make_writer(out, train=500, test=100, per_shard=100)
        writer.prepare()
        for spec in writer.pending(shard_range):
            writer.write_shard(spec, index_samples(spec))
        manifest = writer.finalize()
        assert (manifest is None) == (shard_range == (0, 3))
    assert tree_bytes(out) == tree_bytes(reference)
