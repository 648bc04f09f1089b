"""Deterministic tar writing and fast tar reading for WebDataset shards.

Written by hand because webdataset's TarWriter emits a PAX header with a float mtime for every member
(~1 KB extra each and different bytes on every run: webdataset/writer.py's TarWriter and
Python's tarfile PAX_FORMAT), and because `tarfile`'s reader
costs more per member than parsing the fixed 512-byte ustar headers we write ourselves.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

BLOCK = 512
REGULAR = (b"0", b"\0", b"7")
LINKS = (b"1", b"2")  # hard link, symbolic link
# No sample member comes near this; a larger size field is damage, and reading it would exhaust memory.
MAX_MEMBER_BYTES = 1 << 30


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


def iter_tar_entries(stream: BinaryIO, source: str = "<tar>") -> Iterator[tuple[str, bytes, bytes]]:
    """Yield (name, type flag, bytes) of every entry of a tar stream (files, links, folders), in order.

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
        if size > MAX_MEMBER_BYTES:
            raise ValueError(f"{source}: a member of {size:,} bytes, over the {MAX_MEMBER_BYTES:,} a shard allows")
        data = stream.read(size)
        if len(data) < size:
            raise ValueError(f"{source}: truncated member ({len(data)} of {size} bytes)")
        pad = -size % BLOCK
        if pad and len(stream.read(pad)) < pad:
            raise ValueError(f"{source}: truncated member padding")
        if kind in (b"x", b"g"):
            pending_name = _pax_path(data) if kind == b"x" else pending_name
            continue
        name = pending_name
        if name is None:
            name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
            if prefix and header[257:262] == b"ustar":
                name = f"{prefix}/{name}"
        pending_name = None
        yield name, kind, data


def iter_tar_members(stream: BinaryIO, source: str = "<tar>") -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) of the regular files of a tar stream, in order (links are skipped)."""
    for name, kind, data in iter_tar_entries(stream, source):
        if kind in REGULAR:
            yield name, data


def unsafe_member(name: str, kind: bytes) -> str | None:
    """Why a member could be dangerous to a tool that extracts the shard (`tar x`), or None.

    Readers of ours never use member names as paths, but other tools do: an absolute name or a `..`
    component writes outside the folder, and a link makes a later member's write land elsewhere."""
    if name.startswith("/"):
        return "absolute name"
    if ".." in name.split("/"):
        return "name contains '..'"
    if kind in LINKS:
        return "is a link"
    return None


def iter_tar_bytes(data: bytes, source: str = "<tar>") -> Iterator[tuple[str, bytes]]:
    """iter_tar_members over an in-memory archive."""
    return iter_tar_members(io.BytesIO(data), source)
