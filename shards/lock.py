"""Exclusive folder and shard locks: an OS file lock held for the life of the process.

    hold_lock(out / ".shards" / "locks" / "train-000003.lock", what="data/train-000003.tar")
    held_by_another(path)   # True while some other process holds it

`fcntl.flock` on a small lock file: the kernel releases it when the process dies (kill -9 included), so a
crashed run never leaves a stale lock that needs deleting by hand. The holder writes its pid into the
file, so a refused process can say who holds it. Locks are held per process: asking again for a lock
this process already holds returns at once (a sweep runs many runs, and tests many writers, in one
process). flock works across processes on one machine; on NFS it is only as good as the mount's locking.
Written by hand: neither the standard library nor our dependencies offer a held-for-life lock with a pid.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from shards.errors import ShardsError

_held: dict[str, int] = {}  # resolved lock path -> open descriptor, kept open until the process ends


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
    if key in _held:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InUseError(f"{what}: in use by pid {holder_pid(path)} (lock {path}); wait for that process to end "
                         "or stop it, then re-run") from None
    if not shared:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    _held[key] = fd


def release_lock(path: str | os.PathLike) -> None:
    """Give the lock back before the process ends (a no-op when this process does not hold it)."""
    fd = _held.pop(_key(Path(path)), None)
    if fd is not None:
        os.close(fd)


def held_by_another(path: str | os.PathLike) -> bool:
    """True when a process other than this one holds the lock at `path` (exclusively or shared)."""
    path = Path(path)
    if _key(path) in _held or not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock at once
    return False
