"""Full disks: one clear message, and a free-space check before a big write.

except OSError as exc:
    if is_no_space(exc):
        raise no_space_error(out_dir, need_bytes) from exc
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from shards.errors import ShardsError


def is_no_space(exc: BaseException) -> bool:
    """ENOSPC, or EDQUOT (a quota is a full disk to its user)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def no_space_error(path: str | os.PathLike, need_bytes: int) -> ShardsError:
    megabytes = max(1, math.ceil(need_bytes / 1e6))
    return ShardsError(f"no space left on {path}: free {megabytes:,} MB and re-run; committed shards are kept")


def check_free_space(path: str | os.PathLike, need_bytes: int) -> None:
    """Refuse before writing `need_bytes` under `path` (an existing folder) when the disk has less free."""
    free = shutil.disk_usage(path).free
    if free < need_bytes:
        raise no_space_error(path, need_bytes - free)


@contextmanager
def no_space_is_one_line(path: str | os.PathLike, need_bytes: int = 0) -> Iterator[None]:
    """A full disk inside the block becomes no_space_error(path, need_bytes); other errors pass."""
    try:
        yield
    except OSError as exc:
        if is_no_space(exc):
            raise no_space_error(path, need_bytes) from exc
        raise
