"""shards.lock: held for the process's life, released by death, shared vs exclusive, the holder's pid named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shards.lock import InUseError, hold_lock, release_lock

ROOT = Path(__file__).resolve().parents[1]


def holder(lock: Path, shared: bool) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from shards.lock import hold_lock; "
            f"hold_lock({str(lock)!r}, 'x', shared={shared}); print('held', flush=True); "
            "time.sleep(60)",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def tries(lock: Path, shared: bool) -> int:
    """Exit status of another process asking for the lock: 0 when it got it, 3 when it was in use."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from shards.lock import hold_lock, InUseError\n"
            f"try: hold_lock({str(lock)!r}, 'x', shared={shared})\n"
            "except InUseError: sys.exit(3)",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    ).returncode


def test_shared_holders_coexist_and_an_exclusive_one_names_a_holder(tmp_path):
    lock = tmp_path / "folder.lock"
    other = holder(lock, shared=True)
    try:
        hold_lock(lock, "folder", shared=True)  # a second shared holder: fine
        with pytest.raises(InUseError, match=rf"^folder: in use by pid (\d+) \(lock {lock}\); wait for that "):
            hold_lock(lock, "folder")  # the conversion to exclusive fails while the other holds it...
        assert tries(lock, shared=False) == 3  # ...and this process still holds its shared lock
    finally:
        other.kill()
        other.wait()
    hold_lock(lock, "folder")  # the other died: the kernel released its lock
    assert lock.read_text() == str(os.getpid())
    assert tries(lock, shared=True) == 3
    release_lock(lock)
    assert tries(lock, shared=False) == 0


def test_an_exclusive_holder_refuses_everyone_else_until_it_dies(tmp_path):
    lock = tmp_path / "shard.lock"
    other = holder(lock, shared=False)
    try:
        for shared in (False, True):
            with pytest.raises(InUseError, match=f"in use by pid {other.pid} "):
                hold_lock(lock, "shard", shared=shared)
    finally:
        other.kill()
        other.wait()
    hold_lock(lock, "shard")
    hold_lock(lock, "shard")  # asking again in the same process returns at once
    release_lock(lock)
