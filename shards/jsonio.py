"""Files the toolkit writes and reads: atomic file and folder writes, tolerant JSON reads, JSON lines.

An atomic write goes to a uniquely named temporary file beside the target, is fsynced, then renamed over
it: a reader (or a process killed mid-write) sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shards.errors import ShardsError

_MISSING = object()


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A new, uniquely named empty file beside `path` for the block to write; when the block ends normally
    it is fsynced and renamed over `path`, when it raises it is deleted. Readers (and a process killed
    mid-write) see the old file or the complete new one, never part of it. Created with the usual mode
    (0666 less the umask, as `open` does), so a dataset's files stay readable by others."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """A new, uniquely named empty folder beside `path` for the block to fill; when the block ends normally
    it takes `path`'s place, when it raises it is deleted. Readers see no folder or a complete one.

    Args:
        path: the folder to create; it may exist only empty, unless `replace`.
        replace: delete an existing `path` (and everything in it) just before the new folder takes its place.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists() and replace:
            shutil.rmtree(path)
        elif path.exists() and any(path.iterdir()):
            raise ShardsError(f"{path}: exists and is not empty; choose another folder")
        elif path.exists():
            path.rmdir()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes through `atomic_target`: nothing is left behind on error."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def dumps(data: Any, indent: int | None = 1, sort_keys: bool = True) -> str:
    """The toolkit's one JSON style: sorted keys, so equal data gives equal bytes (`sort_keys=False` keeps
    the writer's order, for rows a person reads in order: the trainer's `step` first)."""
    return json.dumps(data, indent=indent, sort_keys=sort_keys)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, dumps(data) + "\n")


def read_json(path: str | os.PathLike, default: Any = _MISSING, fix: str = "delete or restore it") -> Any:
    """Parse a JSON file. A missing file returns `default` when one is given; unreadable JSON is an error
    naming the file and ending with `fix` (a file we wrote atomically is never half-written, so this means
    someone edited or damaged it)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        if default is not _MISSING:
            return default
        raise ShardsError(f"{path}: no such file") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ShardsError(f"{path}: not valid JSON ({exc}); {fix}") from exc


def read_json_object(
    path: str | os.PathLike, default: Any = _MISSING, fix: str = "delete or restore it", expected: str = "an object"
) -> dict:
    """`read_json` for a file that must hold one JSON object (a config, a description)."""
    data = read_json(path, default, fix)
    if not isinstance(data, dict):
        raise ShardsError(f"{path}: a JSON {type(data).__name__}, not {expected}; {fix}")
    return data


def append_jsonl(path: str | os.PathLike, row: Any, sort_keys: bool = True) -> None:
    """Append one JSON line and fsync it: a kill loses at most the line being written."""
    with open(path, "a") as f:
        f.write(dumps(row, indent=None, sort_keys=sort_keys) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Rows of a JSON-lines file. A partial last line (a kill mid-append) is dropped; a bad line anywhere
    else is an error naming the file and line. A missing file has no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            if number == len(lines):  # the unterminated last line: the append a kill interrupted
                break
            raise ShardsError(f"{path}:{number}: not valid JSON ({exc}); delete or restore the file") from exc
    return rows
