"""Check a dataset against its manifest: `python -m shards verify DIR_OR_URL`.

Re-hashes every shard, counts its samples, decodes every image and checks every label, and reports
missing, extra, truncated and corrupt shards by name, and tar members that would be unsafe to extract
(absolute names, `..`, links). A URL (`http(s)://`, `hf://datasets/...`) is verified by reading each
shard from where it is, without a local copy. The dataset is good only when nothing is reported.
Bad data never raises: it is reported.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from shards.codec import decode_image, json_schema
from shards.errors import ShardsError
from shards.manifest import Manifest, ShardEntry, config_hash, dataset_identity, load_manifest
from shards.naming import sample_key, shard_path
from shards.read import iter_tar_samples, open_url
from shards.tario import iter_tar_entries, unsafe_member
from shards.urls import is_url

MAX_PROBLEMS_PER_SHARD = 10  # listed one by one; the rest of a shard's problems are counted


@dataclass
class VerifyReport:
    root: Path | str
    shards_checked: int = 0
    samples_checked: int = 0
    problems: list[str] = field(default_factory=list)  # a shard's first 10, then "N more problems"
    problem_count: int = 0  # all of them

    def add(self, problems: list[str], file: str | None = None) -> None:
        self.problem_count += len(problems)
        if file and len(problems) > MAX_PROBLEMS_PER_SHARD:
            more = len(problems) - MAX_PROBLEMS_PER_SHARD
            problems = problems[:MAX_PROBLEMS_PER_SHARD] + [f"{file}: {more:,} more problems"]
        self.problems += problems

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_shard(root: Path | str, entry: ShardEntry) -> bytes | str:
    """The shard's bytes, or the problem that kept them from being read."""
    if is_url(root):
        try:
            with open_url(f"{root}/{entry.file}") as f:
                return f.read()
        except ShardsError as exc:
            return f"{entry.file}: cannot read: {exc}"
    try:
        path = shard_path(root, entry.file)
    except ShardsError as exc:
        return str(exc)
    if not path.is_file():
        return f"{entry.file}: missing (manifest lists it)"
    try:
        return path.read_bytes()
    except OSError as exc:
        return f"{entry.file}: cannot read: {exc}"


def _check_shard(root: Path | str, entry: ShardEntry, manifest: Manifest, decode: bool) -> list[str]:
    data = _read_shard(root, entry)
    if isinstance(data, str):
        return [data]
    if len(data) != entry.bytes:
        kind = "truncated" if len(data) < entry.bytes else "larger than recorded"
        return [f"{entry.file}: {kind}: {len(data):,} bytes, manifest says {entry.bytes:,}"]
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        return [f"{entry.file}: corrupt: sha256 {digest[:12]}..., manifest says {entry.sha256[:12]}..."]
    problems = _check_members(data, entry)
    if decode and not problems:
        problems = _check_samples(data, entry, manifest)
    return problems


def _check_members(data: bytes, entry: ShardEntry) -> list[str]:
    """Members another tool would extract outside its folder; a tar that cannot be parsed."""
    problems = []
    try:
        for name, kind, _ in iter_tar_entries(io.BytesIO(data), entry.file):
            why = unsafe_member(name, kind)
            if why:
                problems.append(f"{entry.file}: member {name!r}: {why} (unsafe to extract)")
    except ValueError as exc:
        return [f"{entry.file}: unreadable tar: {exc}"]
    return problems


def _check_samples(data: bytes, entry: ShardEntry, manifest: Manifest) -> list[str]:
    """Keys in order, labels in range, every image decodable at the manifest's shape, counts as recorded."""
    problems, n = [], 0
    num_classes = len(manifest.class_names)
    counts = [0] * num_classes
    shape = manifest.image_shape
    try:
        for n, (key, encoded, cls, meta) in enumerate(iter_tar_samples(data, entry.file, decode=False), start=1):
            expected = entry.first_index + n - 1
            if key != sample_key(expected):
                problems.append(f"{entry.file}: sample {key} where index {expected} was expected")
            schema_problem = _check_json(meta, manifest.json_schema)
            if schema_problem:
                problems.append(f"{entry.file}: sample {key}: {schema_problem}")
            if not 0 <= cls < num_classes:
                problems.append(f"{entry.file}: sample {key} has label {cls}, outside [0, {num_classes})")
            else:
                counts[cls] += 1
            try:
                image = decode_image(encoded, shape[2] if shape else None, shape)
            except ValueError as exc:
                problems.append(f"{entry.file}: sample {key}: {exc}")
                continue
            if shape and list(image.shape) != shape:
                problems.append(f"{entry.file}: sample {key} has shape {list(image.shape)}, expected {shape}")
    except ShardsError as exc:
        return problems + [f"{entry.file}: undecodable: {exc}"]
    if n != entry.samples:
        problems.append(f"{entry.file}: {n:,} samples, manifest says {entry.samples:,}")
    elif counts != entry.label_counts:
        problems.append(f"{entry.file}: label counts {counts} differ from the manifest's {entry.label_counts}")
    return problems


def _check_json(meta, schema: dict[str, str]) -> str | None:
    """What is wrong with a sample's json against the manifest's schema (every sample has the same fields
    and JSON types: `datasets` infers its features from the first samples and fails on the others)."""
    if not isinstance(meta, dict):
        return f"json is a {type(meta).__name__}, not an object of the manifest's fields {sorted(schema)}"
    try:
        found = json_schema(meta)
    except ShardsError as exc:
        return str(exc)
    if found != schema:
        return f"json fields {found} differ from the manifest's {schema}"
    return None


def _check_manifest(manifest: Manifest) -> list[str]:
    """Internal consistency: the config hash and the label histograms must match what they summarise."""
    identity = dataset_identity(
        manifest.config,
        manifest.class_names,
        {split: info.count for split, info in manifest.splits.items()},
        manifest.samples_per_shard,
        manifest.image_ext,
        manifest.min_shards,
    )
    problems = []
    if config_hash(identity) != manifest.config_hash:
        problems.append("manifest.json: config, class names or split sizes were edited (config hash mismatch)")
    for split, info in manifest.splits.items():
        histogram = [sum(col) for col in zip(*(e.label_counts for e in info.shards))] or [0] * len(manifest.class_names)
        if histogram != info.label_histogram:
            problems.append(f"manifest.json: split {split} label histogram does not match its shards")
        total = sum(e.samples for e in info.shards)
        if total != info.count:
            problems.append(f"split {split}: shards hold {total:,} samples, manifest says {info.count:,}")
    return problems


def _extra_files(root: Path, listed: set[str]) -> list[str]:
    data = root / "data"
    names = sorted(f"data/{p.name}" for p in data.iterdir()) if data.is_dir() else []
    return [f"{name}: extra file, not in the manifest" for name in names if name not in listed]


def verify_dataset(root: str | Path, decode: bool = True, progress: bool = False) -> VerifyReport:
    """Verify every shard of the dataset at `root` (a folder or a URL); never raises for bad data."""
    root = str(root).rstrip("/") if is_url(root) else Path(root)
    report = VerifyReport(root)
    try:
        manifest = load_manifest(root)
    except ShardsError as exc:
        report.add([str(exc)])
        return report
    report.add(_check_manifest(manifest))
    entries = [e for info in manifest.splits.values() for e in info.shards]
    name = root.rsplit("/", 1)[-1] if isinstance(root, str) else root.name
    for entry in tqdm(entries, desc=f"verifying {name}", unit="shard", disable=not progress):
        report.add(_check_shard(root, entry, manifest, decode), entry.file)
        report.shards_checked += 1
        report.samples_checked += entry.samples
    if isinstance(root, Path):  # a URL cannot be listed without the server's API
        report.add(_extra_files(root, {e.file for e in entries}))
    return report
