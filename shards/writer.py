"""Write a dataset as WebDataset shards, one atomic shard at a time, resumable by anyone.

    w = DatasetWriter(out_dir, config, class_names, splits={"train": 50_000}, samples_per_shard=10_000)
    w.prepare()
    for spec in w.pending():
        w.write_shard(spec, samples_for(spec))
    w.finalize()

A shard is written under `.shards/tmp/`, fsynced, hashed and renamed into `data/`; then its stats file
`.shards/{split}-{NNNNNN}.json` is written. Workers sharing only the output folder (processes, Ray tasks,
Slurm array jobs) commit shards independently; `finalize` assembles `manifest.json` from the stats files.

Ownership and locks: `prepare` marks a folder it creates (`.shards/created.json`); a folder without the
marker is never written into nor wiped, whatever its files are called. `.shards/config.json` is written
with the first committed shard, so a run that failed before making anything leaves no config behind.
`pending` locks each shard it hands out (`.shards/locks/{split}-{NNNNNN}.lock`, `shards.lock`), so disjoint
`--shards` ranges run side by side while a second process on the same shards is told who holds them;
the folder lock (`.shards/locks/folder.lock`) is shared by every driver and taken exclusively to wipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shards.card import card_text, write_timm_info
from shards.codec import IMAGE_EXTS, encode_image, encode_json, json_schema
from shards.croissant import CROISSANT, write_croissant
from shards.diskspace import is_no_space, no_space_error, no_space_is_one_line
from shards.errors import ShardsError
from shards.identity import input_changes, sha256_file
from shards.jsonio import read_json, read_json_object, write_json_atomic, write_text_atomic
from shards.lock import hold_lock, release_lock
from shards.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    ShardEntry,
    SplitInfo,
    config_hash,
    dataset_identity,
    shard_size,
)
from shards.naming import sample_key, shard_relpath, shard_stem, validate_name
from shards.tario import tar_end, tar_member
from shards.version import __version__

log = logging.getLogger(__name__)

STATE_DIR = ".shards"
# A producer's scratch (e.g. dogbird's staged source files): never counted as a dataset, never wiped here.
SCRATCH_DIR = ".work"
MARKER = "created.json"  # in STATE_DIR: written when the writer creates the folder; ours only if present
CARD_RECORD = "card.json"  # in STATE_DIR: the sha256s of the README.md cards the writer wrote
LOCKS = "locks"  # in STATE_DIR: kept across a wipe (a lock file must not change while it is held)
_SHARD_FILE = re.compile(r"[a-z0-9_-]+-[0-9]{6}\.tar")  # shard_relpath's file names


def recorded_config(path: str | os.PathLike) -> dict[str, Any]:
    """The config an unfinished or finished dataset folder was started with ({} when it has none yet)."""
    return read_json(Path(path) / STATE_DIR / "config.json", default={}).get("config", {})


def is_dataset_folder(path: str | os.PathLike) -> bool:
    """True when a DatasetWriter made this folder: its marker, or a config.json (folders made before the
    marker existed). Only such a folder is ever written into or wiped."""
    state = Path(path) / STATE_DIR
    return (state / MARKER).is_file() or (state / "config.json").is_file()


@dataclass(frozen=True)
class ShardStats(ShardEntry):
    """A committed shard's stats file (`.shards/{split}-{NNNNNN}.json`): done-marker, resume point and the
    manifest entry it becomes. `extra` holds what the producer adds (timings, labeler confidences)."""

    split: str = ""
    shard_index: int = 0
    json_schema: dict[str, str] = field(default_factory=dict)
    image_shape: list[int] | None = None
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardStats:
        return cls(**data)

    def entry(self) -> ShardEntry:
        return ShardEntry(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ShardEntry)})


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: `count` samples of `split` starting at `first_index`."""

    split: str
    shard_index: int
    first_index: int
    count: int

    @property
    def relpath(self) -> str:
        return shard_relpath(self.split, self.shard_index)

    @property
    def stem(self) -> str:
        return shard_stem(self.split, self.shard_index)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value)
    return flat


def _clip(text: str, limit: int = 60) -> str:
    """A config value short enough for a one-line error (a file listing can run to kilobytes)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DatasetWriter:
    """Plans the shards of a dataset, commits them atomically and assembles the manifest."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        config: dict[str, Any],
        class_names: list[str],
        splits: dict[str, int],
        samples_per_shard: int,
        image_ext: str = "png",
        card: Any = None,
        overwrite: bool = False,
        min_shards: int = 1,
    ):
        self.out_dir = Path(out_dir)
        self.config = json.loads(json.dumps(config))  # JSON round trip: what is hashed is what is stored
        self.class_names = list(class_names)
        self.splits = dict(splits)
        self.samples_per_shard = samples_per_shard
        self.image_ext = image_ext
        self.card = card
        self.overwrite = overwrite
        self.min_shards = min_shards
        self._validate()
        self.config_hash = config_hash(self._identity())

    def _validate(self) -> None:
        if not isinstance(self.samples_per_shard, int) or self.samples_per_shard < 1:
            raise ShardsError(f"samples_per_shard={self.samples_per_shard!r}: must be an integer >= 1")
        if not isinstance(self.min_shards, int) or self.min_shards < 1:
            raise ShardsError(f"min_shards={self.min_shards!r}: must be an integer >= 1")
        if self.image_ext not in IMAGE_EXTS:
            raise ShardsError(f"image_ext={self.image_ext!r}: must be one of {', '.join(IMAGE_EXTS)}")
        if not self.class_names:
            raise ShardsError("class_names is empty: a labelled dataset needs at least one class name")
        if not self.splits:
            raise ShardsError("splits is empty: give at least one split, e.g. {'train': 50000}")
        for split, count in self.splits.items():
            validate_name("split", split)
            if not isinstance(count, int) or count < 0:
                raise ShardsError(f"split {split!r} count={count!r}: must be an integer >= 0")

    def _identity(self) -> dict[str, Any]:
        """Everything that decides the bytes of the dataset."""
        return dataset_identity(
            self.config, self.class_names, self.splits, self.samples_per_shard, self.image_ext, self.min_shards
        )

    @property
    def state_dir(self) -> Path:
        return self.out_dir / STATE_DIR

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    # --- setting up -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folder, or check that it holds this same dataset; refuse another config, and any
        folder without our marker that is not empty (its files are never ours to replace)."""
        if self.out_dir.exists() and not is_dataset_folder(self.out_dir):
            found = (
                sorted(p.name for p in self.out_dir.iterdir() if p.name != SCRATCH_DIR)
                if self.out_dir.is_dir()
                else None
            )
            if found is None or found:
                what = "a file" if found is None else f"found {', '.join(found[:5])}"
                raise ShardsError(
                    f"{self.out_dir}: not empty and not a dataset folder made by this toolkit ({what}; no "
                    f"{STATE_DIR}/{MARKER}); its files are never replaced, even with --overwrite: choose an "
                    "empty or new --out"
                )
        with no_space_is_one_line(self.out_dir):
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            if not (self.state_dir / MARKER).is_file():
                write_json_atomic(
                    self.state_dir / MARKER, {"written_by": "shards.DatasetWriter", "toolkit_version": __version__}
                )
        existing = self._existing_hash()
        if existing is not None and existing != self.config_hash:
            if not self.overwrite:
                raise self._refusal()
            hold_lock(self.lock_dir / "folder.lock", f"dataset folder {self.out_dir}")
            self._wipe()
            release_lock(self.lock_dir / "folder.lock")  # wiped: other drivers (disjoint --shards) may join
        hold_lock(self.lock_dir / "folder.lock", f"dataset folder {self.out_dir}", shared=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "data").mkdir(exist_ok=True)

    @property
    def lock_dir(self) -> Path:
        return self.state_dir / LOCKS

    def _record_config(self) -> None:
        """Write .shards/config.json with the first committed shard (refuse if another config got there)."""
        existing = self._existing_hash()
        if existing is None:
            write_json_atomic(self.state_dir / "config.json", {**self._identity(), "hash": self.config_hash})
        elif existing != self.config_hash:
            raise ShardsError(
                f"{self.out_dir}: another run with another config ({self._differences()}) started "
                "writing here meanwhile; use another --out"
            )

    def _refusal(self) -> ShardsError:
        """The one line refusing to resume over another config: a changed input named first."""
        changed = input_changes(read_json(self.state_dir / "config.json").get("config", {}), self.config)
        if changed:
            return ShardsError(
                f"{self.out_dir}: its shards were made from other inputs ({'; '.join(changed)}); "
                "resuming would mix both in one dataset: restore the original input, use another "
                "--out, or pass --overwrite to rebuild it from the new one"
            )
        return ShardsError(
            f"{self.out_dir}: holds a dataset built with another config ({self._differences()}); "
            "use another --out, the same settings, or --overwrite to replace it"
        )

    def _differences(self) -> str:
        """`config.generator.steps: 100 -> 20, ...`: what changed against the folder's config."""
        old = _flatten(read_json(self.state_dir / "config.json"))
        new = _flatten(self._identity())
        changed = [
            f"{k}: {_clip(old.get(k, '(none)'))} -> {_clip(new.get(k, '(none)'))}"
            for k in sorted(set(old) | set(new))
            if k != "hash" and old.get(k) != new.get(k)
        ]
        return "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")

    def _existing_hash(self) -> str | None:
        return read_json(self.state_dir / "config.json", default={}).get("hash")

    def _wipe(self) -> None:
        """Delete what the writer made (the caller holds the folder lock exclusively); keep the locks."""
        for name in ("data", ".cache", "extras"):
            shutil.rmtree(self.out_dir / name, ignore_errors=True)
        for name in (MANIFEST, "README.md", "_info.json", CROISSANT):
            (self.out_dir / name).unlink(missing_ok=True)
        for path in self.state_dir.iterdir():
            if path.name not in (LOCKS, MARKER):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    # --- planning ---------------------------------------------------------------------------------------
    def plan(self) -> list[ShardSpec]:
        """Every shard of every split, in order."""
        specs = []
        for split, count in self.splits.items():
            size = shard_size(count, self.samples_per_shard, self.min_shards)
            for shard_index, first in enumerate(range(0, count, size)):
                specs.append(ShardSpec(split, shard_index, first, min(size, count - first)))
        return specs

    def pending(self, shard_range: tuple[int, int] | None = None) -> list[ShardSpec]:
        """Shards not yet complete (within `shard_range`, an [A, B) range over `plan()` positions).

        Locks each of them for this process's life (another process on one of them is an "in use by pid
        N" error), then deletes their stray temporary files: never a file another process is writing.
        """
        specs = self.plan()
        if shard_range is not None:
            start, stop = shard_range
            if not 0 <= start < stop:
                raise ShardsError(f"--shards {start}:{stop}: need 0 <= A < B")
            specs = specs[start:stop]
        todo = [s for s in specs if not self.is_complete(s)]
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        for spec in todo:
            hold_lock(self.lock_dir / f"{spec.stem}.lock", f"{self.out_dir / spec.relpath}")
        stems = {s.stem for s in todo}
        if self.tmp_dir.is_dir():
            for tmp in self.tmp_dir.iterdir():
                if tmp.name.split(".", 1)[0] in stems:
                    log.info("removing stray temporary file %s", tmp)
                    tmp.unlink(missing_ok=True)
        return todo

    def stats_path(self, spec: ShardSpec) -> Path:
        return self.state_dir / f"{spec.stem}.json"

    def read_stats(self, spec: ShardSpec) -> ShardStats | None:
        """The shard's stats when it was committed under this config; None otherwise (or when unreadable)."""
        try:
            stats = ShardStats.from_dict(read_json(self.stats_path(spec)))
        except (ShardsError, TypeError):
            return None
        # A stats file naming another shard file is damage (or an attempt to steer the manifest): ignore it.
        return stats if stats.config_hash == self.config_hash and stats.file == spec.relpath else None

    def committed_stats(self) -> list[ShardStats]:
        """Stats of every shard committed under this config, whoever wrote it, in plan order."""
        return [st for st in map(self.read_stats, self.plan()) if st is not None]

    def is_complete(self, spec: ShardSpec) -> bool:
        """True when the shard's stats exist and its file has the recorded size and sha256."""
        stats = self.read_stats(spec)
        path = self.out_dir / spec.relpath
        if stats is None or not path.is_file():
            return False
        return path.stat().st_size == stats.bytes and sha256_file(path) == stats.sha256

    # --- writing ----------------------------------------------------------------------------------------
    def write_shard(
        self, spec: ShardSpec, samples: Iterable[dict[str, Any]], extra: dict[str, Any] | None = None
    ) -> ShardStats:
        """Write, fsync, hash and commit one shard; return its stats. Nothing is left behind on error."""
        tmp = self.tmp_dir / f"{spec.stem}.{socket.gethostname()}-{os.getpid()}.tar"
        written = 0  # bytes of the shard that fitted before the disk filled: at least that much is needed
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            try:
                stats = self._write_tmp(tmp, spec, samples)
                os.replace(tmp, self.out_dir / spec.relpath)
            except BaseException:
                written = tmp.stat().st_size if tmp.exists() else 0
                tmp.unlink(missing_ok=True)
                raise
            stats = dataclasses.replace(stats, config_hash=self.config_hash, extra=extra or {})
            self._record_config()
            write_json_atomic(self.stats_path(spec), stats.to_dict())
        except OSError as exc:
            if is_no_space(exc):
                raise no_space_error(self.out_dir, max(written, self._bytes_still_needed())) from exc
            raise
        return stats

    def _bytes_still_needed(self) -> int:
        """Bytes the shards not yet committed will take, at the committed shards' bytes per sample."""
        committed = self.committed_stats()
        per_sample = sum(st.bytes for st in committed) / max(1, sum(st.samples for st in committed)) if committed else 0
        done = {st.file for st in committed}
        return int(per_sample * sum(s.count for s in self.plan() if s.relpath not in done))

    def _write_tmp(self, tmp: Path, spec: ShardSpec, samples: Iterable[dict[str, Any]]) -> ShardStats:
        digest, size, count = hashlib.sha256(), 0, 0
        labels = np.zeros(len(self.class_names), dtype=np.int64)
        fields = schema = shape = None
        with open(tmp, "wb") as f:
            for count, sample in enumerate(samples, start=1):
                if count > spec.count:
                    raise ShardsError(f"{spec.relpath}: more than the planned {spec.count} samples were given")
                key = sample_key(spec.first_index + count - 1)
                members, cls, sample_schema, sample_shape = self._members(key, sample, spec)
                if fields is None:
                    fields, schema, shape = sorted(sample), sample_schema, sample_shape
                elif sorted(sample) != fields or sample_schema != schema:
                    raise ShardsError(
                        f"{spec.relpath} sample {key}: fields {sorted(sample)} / json {sample_schema} differ "
                        f"from the first sample's {fields} / {schema}; every sample needs the same fields"
                    )
                elif shape != sample_shape:
                    shape = None
                labels[cls] += 1
                for chunk in members:
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            end = tar_end()
            f.write(end)
            digest.update(end)
            size += len(end)
            f.flush()
            os.fsync(f.fileno())
        if count != spec.count:
            raise ShardsError(f"{spec.relpath}: got {count} samples, planned {spec.count}")
        return ShardStats(
            split=spec.split,
            shard_index=spec.shard_index,
            file=spec.relpath,
            samples=count,
            bytes=size,
            sha256=digest.hexdigest(),
            first_index=spec.first_index,
            label_counts=labels.tolist(),
            json_schema=schema or {},
            image_shape=list(shape) if shape else None,
        )

    def _members(self, key: str, sample: dict[str, Any], spec: ShardSpec):
        where = f"{spec.relpath} sample {key}"
        if "image" not in sample or "cls" not in sample:
            raise ShardsError(f"{where}: a sample needs 'image' and 'cls' (got {sorted(sample)})")
        cls = sample["cls"]
        if (
            isinstance(cls, (bool, np.bool_))
            or not isinstance(cls, (int, np.integer))
            or not (0 <= cls < len(self.class_names))
        ):
            raise ShardsError(f"{where}: cls={cls!r} must be an integer in [0, {len(self.class_names)})")
        image = sample["image"]
        shape = tuple(np.shape(image)) if not isinstance(image, (bytes, bytearray)) else None
        members = [
            tar_member(f"{key}.{self.image_ext}", encode_image(image, self.image_ext)),
            tar_member(f"{key}.cls", str(int(cls)).encode()),
        ]
        meta = sample.get("json")
        schema = None
        if meta is not None:
            if not isinstance(meta, dict):
                raise ShardsError(f"{where}: 'json' must be a dict, got {type(meta).__name__}")
            schema = json_schema(meta)
            members.append(tar_member(f"{key}.json", encode_json(meta)))
        for name in sorted(set(sample) - {"image", "cls", "json"}):
            validate_name("field", name)
            value = sample[name]
            if not isinstance(value, (bytes, bytearray)):
                raise ShardsError(f"{where}: extra field {name!r} must be bytes")
            members.append(tar_member(f"{key}.{name}", bytes(value)))
        return members, int(cls), schema, shape

    # --- finishing --------------------------------------------------------------------------------------
    def finalize(self, skipped: list[dict[str, Any]] | None = None) -> Manifest | None:
        """Assemble manifest.json (+ card and timm `_info.json`) once every shard is committed.

        `skipped`: the source files the producer left out, each with its reason (stored in the manifest).
        """
        specs = self.plan()
        stats = [self.read_stats(s) for s in specs]
        missing = [s.relpath for s, st in zip(specs, stats) if st is None]
        if missing:
            log.info(
                "%d of %d shards still missing (e.g. %s): manifest not written yet",
                len(missing),
                len(specs),
                missing[0],
            )
            return None
        manifest = dataclasses.replace(self._assemble(specs, stats), skipped=list(skipped or []))
        with no_space_is_one_line(self.out_dir):
            self._record_config()  # a dataset of empty splits commits no shard
            self._remove_stray_shards(specs)
            write_timm_info(self.out_dir, manifest)
            self._write_card(manifest)
            write_croissant(self.out_dir, manifest, self.card)
            write_json_atomic(self.out_dir / MANIFEST, manifest.to_dict())
        return manifest

    def _write_card(self, manifest: Manifest) -> None:
        """Write README.md, unless it is not one the writer wrote (edited by hand since, or the user's):
        then keep it and say so. `.shards/card.json` holds the sha256s of the cards written here."""
        path, record = self.out_dir / "README.md", self.state_dir / CARD_RECORD
        text = card_text(manifest, self.card)
        new = hashlib.sha256(text.encode()).hexdigest()
        current = sha256_file(path) if path.is_file() else None
        written = read_json_object(record, default={}, fix="delete it and re-run").get("sha256", [])
        if current not in (None, new, *written):  # a card equal to the one due is ours (made before the record)
            log.warning(
                "%s: edited since this toolkit wrote it (or not written by it): kept as it is; delete it "
                "and re-run the same command to have the dataset card written again",
                path,
            )
            return
        # Recorded before the card is replaced: a kill between the two leaves both cards recognised as ours.
        write_json_atomic(record, {"sha256": [h for h in dict.fromkeys((current, new)) if h]})
        write_text_atomic(path, text)

    def _remove_stray_shards(self, specs: list[ShardSpec]) -> None:
        """Delete shard-named files in data/ that this dataset does not plan (ours: the folder carries our
        marker and the names are ours), so verify finds the dataset clean; `foreign_files` names the rest."""
        planned = {Path(s.relpath).name for s in specs}
        for path in sorted((self.out_dir / "data").glob("*.tar")):
            if path.name not in planned and _SHARD_FILE.fullmatch(path.name) and path.is_file():
                log.warning("%s: a shard this dataset does not plan (a leftover): removed", path)
                path.unlink()

    def foreign_files(self) -> list[str]:
        """Files in data/ that are not this dataset's shards and not ours to delete (verify flags them)."""
        planned = {s.relpath for s in self.plan()}
        data = self.out_dir / "data"
        return (
            sorted(f"data/{p.name}" for p in data.iterdir() if f"data/{p.name}" not in planned) if data.is_dir() else []
        )

    def _assemble(self, specs: list[ShardSpec], stats: list[ShardStats]) -> Manifest:
        schemas = {json.dumps(st.json_schema, sort_keys=True) for st in stats if st.samples}
        if len(schemas) > 1:
            raise ShardsError(
                f"{self.out_dir}: shards disagree on the json fields ({' vs '.join(sorted(schemas))}); "
                "rebuild with --overwrite"
            )
        shapes = {tuple(st.image_shape) if st.image_shape else None for st in stats if st.samples}
        splits = {}
        for split, count in self.splits.items():
            entries = [st.entry() for s, st in zip(specs, stats) if s.split == split]
            histogram = (
                np.sum([e.label_counts for e in entries], axis=0).astype(int).tolist()
                if entries
                else [0] * len(self.class_names)
            )
            splits[split] = SplitInfo(count=count, shards=entries, label_histogram=histogram)
        return Manifest(
            format_version=FORMAT_VERSION,
            toolkit_version=__version__,
            config=self.config,
            config_hash=self.config_hash,
            class_names=self.class_names,
            image_ext=self.image_ext,
            image_shape=list(next(iter(shapes))) if len(shapes) == 1 and None not in shapes else None,
            samples_per_shard=self.samples_per_shard,
            min_shards=self.min_shards,
            json_schema=json.loads(schemas.pop()) if schemas else {},
            splits=splits,
        )
