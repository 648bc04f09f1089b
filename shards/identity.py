"""Content identities of a dataset's inputs: what they are (their files' sizes and sha256, a Hub revision),
never where they lie.

    weights = identify_files("tiny-ddpm", folder, ["model_index.json", "unet/config.json", ...])
    config = {"generator": {"model": weights.name, "weights": weights.to_dict(), ...}}

A dataset's config holds these records, so its hash changes when an input's bytes do: a resumed build
over a changed input is refused (`DatasetWriter.prepare`, with `input_changes` naming the input and the
file), and one dataset never mixes two labelers or two sources. Names are a Hub id or a folder's or
file's own name, never an absolute path, so publishing a dataset leaks nothing of the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shards.errors import ShardsError

# Few-file inputs (models) keep their listing, so a refusal can name the file that changed; a source of
# many files (an image folder) keeps only the listing's hash, which keeps the config (and manifest) small.
MAX_LISTED = 32


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileRecord:
    """One file of an input: its path relative to the input's root (POSIX), size and sha256 (None where
    only the size is checked: a listing of ~155K ImageNet files is identified by a stat each, not a read)."""

    path: str
    bytes: int
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(str(data["path"]), int(data["bytes"]), data["sha256"])


@dataclass(frozen=True)
class InputIdentity:
    """What an input is: `sha256` of its listing (every file's relative path, size and sha256)."""

    name: str  # a Hub id, or the folder's or file's own name: never a path
    sha256: str
    files: int
    bytes: int
    revision: str | None = None  # the Hub commit the files were resolved at
    listing: tuple[FileRecord, ...] = ()  # kept when at most MAX_LISTED files

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "files": self.files,
            "bytes": self.bytes,
            "revision": self.revision,
            "listing": [r.to_dict() for r in self.listing],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputIdentity:
        return cls(
            str(data["name"]),
            str(data["sha256"]),
            int(data["files"]),
            int(data["bytes"]),
            data.get("revision"),
            tuple(FileRecord.from_dict(r) for r in data.get("listing", ())),
        )


def identity_of(name: str, records: Iterable[FileRecord], revision: str | None = None) -> InputIdentity:
    """The identity of an input made of `records` (sorted here by path, so listing order never matters)."""
    records = tuple(sorted(records, key=lambda r: r.path))
    digest = hashlib.sha256(json.dumps([[r.path, r.bytes, r.sha256] for r in records]).encode()).hexdigest()
    return InputIdentity(
        name,
        digest,
        len(records),
        sum(r.bytes for r in records),
        revision,
        records if len(records) <= MAX_LISTED else (),
    )


def file_record(root: Path, relpath: str) -> FileRecord:
    path = root / relpath
    try:
        return FileRecord(Path(relpath).as_posix(), path.stat().st_size, sha256_file(path))
    except OSError as exc:
        raise ShardsError(
            f"{path}: cannot read it to identify the input ({exc.strerror or exc}); check the file and re-run"
        ) from None


def identify_files(
    name: str, root: str | os.PathLike, relpaths: Iterable[str], revision: str | None = None
) -> InputIdentity:
    """Hash the named files under `root` (each read once)."""
    return identity_of(name, (file_record(Path(root), p) for p in relpaths), revision)


def folder_files(root: str | os.PathLike) -> list[str]:
    """Every regular file under `root`, relative and sorted, leaving out hidden files and folders (names
    starting with "."), which `datasets`' data-file patterns skip too (and where caches and VCS data live)."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder).relative_to(root)
        found += [(base / f).as_posix() for f in files if not f.startswith(".") and (Path(folder) / f).is_file()]
    return sorted(found)


def identify_folder(root: str | os.PathLike) -> InputIdentity:
    """Hash every (non-hidden) file of a folder, named by the folder's own name."""
    return identify_files(portable_path(root), root, folder_files(root))


def portable_path(path: str | os.PathLike) -> str:
    """The name a local input is recorded under: its own file or folder name (`./src/` and `/a/src` -> `src`)."""
    return Path(path).expanduser().resolve().name


def _is_identity(value: Any) -> bool:
    return isinstance(value, dict) and {"name", "sha256", "files", "bytes", "listing"} <= value.keys()


def input_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Each input identity found at the same place in both configs whose content differs, as one phrase:
    `generator.weights (tiny-ddpm): unet/model.safetensors changed (sha256 1a2b3c4d -> 5e6f7a8b)`."""
    changes = []
    for key in sorted(set(old) & set(new)):
        a, b, where = old[key], new[key], f"{prefix}{key}"
        if _is_identity(a) and _is_identity(b):
            if a["sha256"] != b["sha256"] or a.get("revision") != b.get("revision"):
                changes.append(f"{where} ({b['name']}): {_what_changed(a, b)}")
        elif isinstance(a, dict) and isinstance(b, dict):
            changes += input_changes(a, b, f"{where}.")
    return changes


def _what_changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("revision") != new.get("revision"):
        return f"Hub revision {old.get('revision')} -> {new.get('revision')}"
    before = {r["path"]: r for r in old["listing"]}
    after = {r["path"]: r for r in new["listing"]}
    if before and after:
        parts = [
            f"{p} changed ({_short(before[p])} -> {_short(after[p])})"
            for p in sorted(set(before) & set(after))
            if before[p] != after[p]
        ]
        parts += [f"{p} added" for p in sorted(set(after) - set(before))]
        parts += [f"{p} removed" for p in sorted(set(before) - set(after))]
        if parts:
            return ", ".join(parts[:3]) + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")
    return (
        f"its files changed ({old['files']:,} files, {old['bytes']:,} bytes, sha256 {old['sha256'][:8]} -> "
        f"{new['files']:,} files, {new['bytes']:,} bytes, sha256 {new['sha256'][:8]})"
    )


def _short(record: dict[str, Any]) -> str:
    return f"{record['bytes']:,} bytes" + (f", sha256 {record['sha256'][:8]}" if record["sha256"] else "")
