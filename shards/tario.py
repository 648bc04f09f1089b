"""Deterministic tar writing and fast tar reading for WebDataset shards.

Written by hand because webdataset's TarWriter emits a PAX header with a float mtime for every member
(~1 KB extra each and different bytes on every run: webdataset/writer.py's TarWriter and
Python's tarfile PAX_FORMAT), and because `tarfile`'s reader
costs more per member than parsing the fixed 512-byte ustar headers we write ourselves.
"""
from __future__ import annotations

import io
import tarfile
from typing import BinaryIO, Iterator

BLOCK = 512


def tar_member(name: str, data: bytes) -> bytes:
    """One ustar member (header + data + padding) with fixed mtime/uid/gid/mode: the same bytes every run."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    header = info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")
    return header + data + b"\0" * (-len(data) % BLOCK)


def tar_end() -> bytes:
    """End-of-archive marker: two zero blocks."""
    return b"\0" * (2 * BLOCK)


def _octal(field: bytes) -> int:
    field = field.rstrip(b"\0 ").strip()
    if field and field[0] & 0x80:  # GNU base-256 for big sizes
        return int.from_bytes(field[1:], "big")
    return int(field, 8) if field else 0


def _pax_path(data: bytes) -> str | None:
    for record in data.decode("utf-8", "replace").split("\n"):
        _, _, kv = record.partition(" ")
        key, _, value = kv.partition("=")
        if key == "path":
            return value
    return None


def iter_tar_members(stream: BinaryIO, source: str = "<tar>") -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) of the regular files of a tar stream, in order.

    Understands the PAX `path` records other writers (webdataset) emit; other PAX fields are ignored.
    Raises ValueError naming `source` on a truncated archive.
    """
    pending_name = None
    while True:
        header = stream.read(BLOCK)
        if len(header) < BLOCK:
            if header:
                raise ValueError(f"{source}: truncated tar header")
            return
        if header == b"\0" * BLOCK:
            return
        size = _octal(header[124:136])
        kind = header[156:157]
        data = stream.read(size)
        if len(data) < size:
            raise ValueError(f"{source}: truncated member ({len(data)} of {size} bytes)")
        pad = -size % BLOCK
        if pad and len(stream.read(pad)) < pad:
            raise ValueError(f"{source}: truncated member padding")
        if kind in (b"x", b"g"):
            pending_name = _pax_path(data) if kind == b"x" else pending_name
            continue
        if kind not in (b"0", b"\0", b"7"):
            pending_name = None
            continue
        name = pending_name
        if name is None:
            name = header[0:100].split(b"\0", 1)[0].decode("utf-8")
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8")
            if prefix and header[257:262] == b"ustar":
                name = f"{prefix}/{name}"
        pending_name = None
        yield name, data


def iter_tar_bytes(data: bytes, source: str = "<tar>") -> Iterator[tuple[str, bytes]]:
    """iter_tar_members over an in-memory archive."""
    return iter_tar_members(io.BytesIO(data), source)
