"""What each of the demo's stages consumed, by content: a stage whose inputs changed is redone or refused.

A stage's key is the sha256 of its settings and of the sha256 of everything it reads (model weights, the
shard hashes of the datasets it trains or filters on). `<out>/stages.json` holds the key each stage's
output was made from; a later run whose key differs replaces that output with --overwrite and is refused
without it. Paths never identify an input: a labeler retrained at the same path, or a pool regenerated in
the same folder, changes the key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from demo.errors import DemoError
from shards import load_manifest
from shards.jsonio import read_json, write_json_atomic
from shards.writer import is_dataset_folder

STAGES_FILE = "stages.json"
# Files of a model folder that describe it without deciding its outputs: re-measuring a model rewrites them.
DESCRIPTIVE = frozenset({"metrics.json", "training.json"})


def _canonical_sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(folder: Path) -> str:
    """sha256 over (relative path, sha256) of every file of a model folder that decides its outputs."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in DESCRIPTIVE)
    if not files:
        raise DemoError(f"{folder}: no model files; run `make demo-models` or pass --models")
    return _canonical_sha256([[p.relative_to(folder).as_posix(), file_sha256(p)] for p in files])


def dataset_sha256(folder: Path) -> str:
    """sha256 of a dataset's content as its manifest lists it: class names and every split's shard hashes."""
    manifest = load_manifest(folder)
    return _canonical_sha256(
        {
            "class_names": manifest.class_names,
            "splits": {name: [s.sha256 for s in split.shards] for name, split in sorted(manifest.splits.items())},
        }
    )


@dataclass(frozen=True)
class StageKey:
    """One stage's identity: its settings and the sha256 of each input it consumes, by name."""

    stage: str
    settings: dict
    inputs: dict  # name -> sha256

    def __post_init__(self):  # stored as JSON: tuples become lists, so compare what is stored
        object.__setattr__(self, "settings", json.loads(json.dumps(self.settings)))

    @property
    def sha256(self) -> str:
        return _canonical_sha256({"settings": self.settings, "inputs": self.inputs})

    def to_dict(self) -> dict:
        return {"stage": self.stage, "settings": self.settings, "inputs": self.inputs, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict) -> StageKey:
        return cls(stage=data["stage"], settings=dict(data["settings"]), inputs=dict(data["inputs"]))

    def changes(self, old: StageKey | None) -> str:
        """What differs from the key an output was made from, in words."""
        if old is None:
            return "its inputs were not recorded (made by an older demo)"
        names = [n for n in sorted(set(self.inputs) | set(old.inputs)) if self.inputs.get(n) != old.inputs.get(n)]
        if old.settings != self.settings:
            names.append("settings")
        return "changed: " + ", ".join(names)


def claim_stage(out: Path, key: StageKey, output: Path, overwrite: bool) -> None:
    """Make `output` belong to `key` before the stage runs: an output made from other inputs is deleted
    with `overwrite` and refused without it; then the key is recorded (so a killed stage resumes only
    with the same inputs)."""
    ledger = read_json(out / STAGES_FILE, {})
    old = StageKey.from_dict(ledger[key.stage]) if key.stage in ledger else None
    if output.exists() and (old is None or old.sha256 != key.sha256):
        if not overwrite:
            raise DemoError(
                f"{output}: made from other inputs than this run's {key.stage} stage "
                f"({key.changes(old)}); pass --overwrite to redo it, or choose another --out"
            )
        if not _made_by_demo(output):
            raise DemoError(
                f"{output}: not a dataset or experiment folder, so not the demo's to replace; "
                "move it away or choose another --out"
            )
        shutil.rmtree(output)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / STAGES_FILE, {**ledger, key.stage: key.to_dict()})


def _made_by_demo(folder: Path) -> bool:
    """A dataset folder (shards' marker) or a train experiment folder: what the demo's stages write."""
    return folder.is_dir() and (
        is_dataset_folder(folder) or (folder / "experiment.json").is_file() or (folder / "sections").is_dir()
    )
