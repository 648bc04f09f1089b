"""Check a dataset against its manifest: `python -m shards verify DIR`.

Re-hashes every shard, counts its samples, decodes every image and checks every label, and reports
missing, extra, truncated and corrupt shards by name. The dataset is good only when nothing is reported.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from shards.errors import ShardsError
from shards.manifest import Manifest, ShardEntry, config_hash, load_manifest
from shards.read import iter_shard


@dataclass
class VerifyReport:
    root: Path
    shards_checked: int = 0
    samples_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_shard(root: Path, entry: ShardEntry, manifest: Manifest, decode: bool) -> list[str]:
    path = root / entry.file
    if not path.is_file():
        return [f"{entry.file}: missing (manifest lists it)"]
    size = path.stat().st_size
    if size != entry.bytes:
        kind = "truncated" if size < entry.bytes else "larger than recorded"
        return [f"{entry.file}: {kind}: {size:,} bytes, manifest says {entry.bytes:,}"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        return [f"{entry.file}: corrupt: sha256 {digest[:12]}..., manifest says {entry.sha256[:12]}..."]
    if not decode:
        return []
    return _check_samples(path, entry, manifest)


def _check_samples(path: Path, entry: ShardEntry, manifest: Manifest) -> list[str]:
    problems, n = [], 0
    num_classes = len(manifest.class_names)
    counts = [0] * num_classes
    shape = manifest.image_shape
    try:
        for n, (key, image, cls, _) in enumerate(iter_shard(path), start=1):
            expected = entry.first_index + n - 1
            if int(key) != expected:
                problems.append(f"{entry.file}: sample {key} where index {expected} was expected")
            if not 0 <= cls < num_classes:
                problems.append(f"{entry.file}: sample {key} has label {cls}, outside [0, {num_classes})")
            else:
                counts[cls] += 1
            if shape and list(image.shape) != shape:
                problems.append(f"{entry.file}: sample {key} has shape {list(image.shape)}, expected {shape}")
            if len(problems) > 10:
                break
    except (ShardsError, OSError, ValueError) as exc:
        return [f"{entry.file}: undecodable: {exc}"]
    if n != entry.samples:
        problems.append(f"{entry.file}: {n:,} samples, manifest says {entry.samples:,}")
    elif counts != entry.label_counts:
        problems.append(f"{entry.file}: label counts {counts} differ from the manifest's {entry.label_counts}")
    return problems


def _check_manifest(manifest: Manifest) -> list[str]:
    """Internal consistency: the config hash and the label histograms must match what they summarise."""
    identity = {
        "config": manifest.config, "class_names": manifest.class_names,
        "splits": {split: info.count for split, info in manifest.splits.items()},
        "samples_per_shard": manifest.samples_per_shard, "image_ext": manifest.image_ext,
    }
    problems = []
    if config_hash(identity) != manifest.config_hash:
        problems.append("manifest.json: config, class names or split sizes were edited (config hash mismatch)")
    for split, info in manifest.splits.items():
        histogram = [sum(col) for col in zip(*(e.label_counts for e in info.shards))] or [0] * len(
            manifest.class_names)
        if histogram != info.label_histogram:
            problems.append(f"manifest.json: split {split} label histogram does not match its shards")
    return problems


def verify_dataset(root: str | Path, decode: bool = True, progress: bool = False) -> VerifyReport:
    """Verify every shard of the dataset at `root`; never raises for bad data, reports it instead."""
    root = Path(root)
    report = VerifyReport(root)
    try:
        manifest = load_manifest(root)
    except ShardsError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += _check_manifest(manifest)
    listed = set()
    entries = [(split, e) for split, info in manifest.splits.items() for e in info.shards]
    for split, info in manifest.splits.items():
        total = sum(e.samples for e in info.shards)
        if total != info.count:
            report.problems.append(f"split {split}: shards hold {total:,} samples, manifest says {info.count:,}")
    for split, entry in tqdm(entries, desc=f"verifying {root.name}", unit="shard", disable=not progress):
        listed.add(entry.file)
        report.problems += _check_shard(root, entry, manifest, decode)
        report.shards_checked += 1
        report.samples_checked += entry.samples
    data = root / "data"
    extra = sorted(f"data/{p.name}" for p in data.iterdir() if f"data/{p.name}" not in listed) if data.is_dir() else []
    report.problems += [f"{name}: extra file, not in the manifest" for name in extra]
    return report
