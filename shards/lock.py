"""Folder and shard locks: an OS file lock held for the life of the process (or until released).

    hold_lock(out / ".shards" / "locks" / "train-000003.lock", what="data/train-000003.tar")
    release_lock(path)      # give it back early (a process that goes on to other work)

`fcntl.flock` on a small lock file: the kernel releases it when the process dies (kill -9 included), so a
crashed run never leaves a stale lock that needs deleting by hand. The holder writes its pid into the
file, so a refused process can say who holds it. Locks are held per process: asking again for a lock
this process already holds returns at once, or converts a shared hold to exclusive (a sweep runs many
runs, and tests many writers, in one process). flock works across processes on one machine; on NFS it
is only as good as the mount's locking.
Written by hand: neither the standard library nor our dependencies offer a held-for-life lock with a pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from shards.errors import ShardsError

_held: dict[str, tuple[int, bool]] = {}  # resolved lock path -> (open descriptor, shared), kept until exit


class InUseError(ShardsError):
    """Another process holds the lock."""


def _key(path: Path) -> str:
    return str(path.resolve())


def holder_pid(path: str | os.PathLike) -> str:
    """The pid written by the lock's holder, or '?' while it has not written it yet."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"


def hold_lock(path: str | os.PathLike, what: str, shared: bool = False) -> None:
    """Take the lock at `path` for the rest of this process's life (create it if needed).

    Raises InUseError naming `what` and the holder's pid when another process holds it (an exclusive
    lock conflicts with any holder; a shared one only with an exclusive holder).
    """
    path = Path(path)
    key = _key(path)
    fd, held_shared = _held.get(key, (None, False))
    if fd is not None and (shared or not held_shared):
        return
    if fd is not None:  # held shared, wanted exclusive: convert (flock drops the old lock first, so on
        try:  # failure take the shared one back: the other holders are all shared ones)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            raise InUseError(_in_use(what, path)) from None
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InUseError(_in_use(what, path)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[key] = (fd, shared)


def _in_use(what: str, path: Path) -> str:
    return (
        f"{what}: in use by pid {holder_pid(path)} (lock {path}); wait for that process to end or stop it, then re-run"
    )


def release_lock(path: str | os.PathLike) -> None:
    """Give the lock back before the process ends (a no-op when this process does not hold it)."""
    fd, _ = _held.pop(_key(Path(path)), (None, False))
    if fd is not None:
        os.close(fd)
