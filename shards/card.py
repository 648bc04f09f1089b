"""The Hugging Face dataset card (`README.md`) and timm's `_info.json`, both made from the manifest.

The card's YAML declares `configs` (data files per split) and `dataset_info.features` with every field's
type, because HF `datasets` otherwise infers the schema from the first samples it reads
(datasets/packaged_modules/webdataset/webdataset.py, `NUM_EXAMPLES_FOR_FEATURES_INFERENCE = 5`). The YAML
is emitted by PyYAML's `safe_dump`, never by string formatting: every string in it (source names, class
names, the pretty name) can come from a user or a file, and `@src` or `weird: v2 #1` must stay strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shards.errors import ShardsError
from shards.jsonio import write_json_atomic
from shards.manifest import Manifest

JSON_TO_HF = {"int": "int64", "float": "float64", "str": "string", "bool": "bool", "null": "null"}

# Licence ids from the Hub's list (hf.co/docs/hub/repositories-licenses) that datasets of ours carry;
# `other` needs `license_name` and `license_link` (hub-docs datasetcard.md: "If license = other ...").
LICENSES = (
    "apache-2.0",
    "mit",
    "bsd-3-clause",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "odc-by",
    "openrail",
    "other",
    "unknown",
)


@dataclass(frozen=True)
class License:
    """A dataset's licence as the card states it: a Hub licence id, and for `other` its name and link."""

    id: str = "unknown"
    name: str = ""
    link: str = ""

    def __post_init__(self) -> None:
        check_license(self.id, self.name, self.link)

    def card_fields(self) -> dict[str, str]:
        return {"license": self.id, "license_name": self.name, "license_link": self.link}


@dataclass(frozen=True)
class CardInfo:
    """What the card says beyond the manifest: provenance, licence, and the labeler's measured quality."""

    pretty_name: str = "Deep Bootstrap dataset"
    description: str = ""
    license: str = "unknown"
    license_name: str = ""  # with license "other": an id such as `imagenet-terms`
    license_link: str = ""  # with license "other": a URL, or `LICENSE` for a file in the repo
    task_categories: tuple[str, ...] = ("image-classification",)
    annotations_creators: tuple[str, ...] = ("machine-generated",)
    source_datasets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ("deep-bootstrap", "webdataset")
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_license(self.license, self.license_name, self.license_link)


def check_license(license: str, name: str = "", link: str = "") -> None:
    """Raise ShardsError unless `license` is a known id and `other` comes with its name and link."""
    if license not in LICENSES:
        raise ShardsError(
            f"--license {license!r}: not one of {', '.join(LICENSES)}; for another licence pass "
            "--license other --license-name ID --license-link URL"
        )
    if license == "other" and not (name and link):
        raise ShardsError(
            "--license other: needs --license-name (an id, e.g. my-license-1.0) and --license-link "
            "(a URL, or LICENSE for a file in the repo), as the Hub's dataset card asks"
        )


def declared_license(folder: str | Path) -> str:
    """The `license` a model or dataset folder's own card (README.md YAML) declares, or "not stated"."""
    card = Path(folder) / "README.md"
    try:
        head = card.read_text(encoding="utf-8").split("---")
        meta = yaml.safe_load(head[1]) if len(head) > 2 and not head[0].strip() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        meta = None
    found = meta.get("license") if isinstance(meta, dict) else None
    return str(found) if found else "not stated in its README.md"


def size_category(n: int) -> str:
    for limit, name in [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
    ]:
        if n < limit:
            return name
    return "100M<n<1B"


def _feature(name: str, kind: str) -> dict[str, str]:
    if kind.startswith("list["):
        return {"name": name, "list": JSON_TO_HF[kind[5:-1]]}
    return {"name": name, "dtype": JSON_TO_HF[kind]}


def _features(manifest: Manifest) -> list[dict[str, Any]]:
    names = {str(i): name for i, name in enumerate(manifest.class_names)}
    features: list[dict[str, Any]] = [
        {"name": manifest.image_ext, "dtype": "image"},
        {"name": "cls", "dtype": {"class_label": {"names": names}}},
    ]
    if manifest.json_schema:
        features.append({"name": "json", "struct": [_feature(n, k) for n, k in manifest.json_schema.items()]})
    return features + [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]


def card_metadata(manifest: Manifest, info: CardInfo) -> dict[str, Any]:
    """The card's YAML header as data, in the Hub template's key order."""
    total = sum(s.count for s in manifest.splits.values())
    meta: dict[str, Any] = {"pretty_name": info.pretty_name, "license": info.license}
    if info.license == "other":
        meta.update(license_name=info.license_name, license_link=info.license_link)
    lists = {
        "task_categories": info.task_categories,
        "size_categories": (size_category(total),),
        "annotations_creators": info.annotations_creators,
        "source_datasets": info.source_datasets,
        "tags": info.tags,
    }
    meta.update({key: list(values) for key, values in lists.items() if values})
    meta["configs"] = [
        {"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*.tar"} for s in manifest.splits]}
    ]
    meta["dataset_info"] = {
        "features": _features(manifest),
        "splits": [
            {"name": split, "num_examples": s.count, "num_bytes": sum(e.bytes for e in s.shards)}
            for split, s in manifest.splits.items()
        ],
    }
    return meta


def card_yaml(manifest: Manifest, info: CardInfo) -> str:
    text = yaml.safe_dump(card_metadata(manifest, info), sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"---\n{text}---\n"


def card_body(manifest: Manifest, info: CardInfo) -> str:
    splits = ", ".join(f"{name}: {s.count:,}" for name, s in manifest.splits.items())
    first = next(iter(manifest.splits))
    classes = ", ".join(f"{i} {n}" for i, n in enumerate(manifest.class_names))
    histogram = "\n".join(
        f"| {split} | " + " | ".join(str(c) for c in s.label_histogram) + " |" for split, s in manifest.splits.items()
    )
    header = "| split | " + " | ".join(manifest.class_names) + " |\n|" + "---|" * (len(manifest.class_names) + 1)
    notes = "\n".join(f"- {n}" for n in info.notes)
    licence = f"[{info.license_name}]({info.license_link})" if info.license == "other" else f"`{info.license}`"
    return f"""
# {info.pretty_name}

{info.description}

Samples: {splits}. Classes: {classes}.
Format: WebDataset tar shards `data/{{split}}-NNNNNN.tar`; each sample is `KEY.{manifest.image_ext}` (the
image), `KEY.cls` (integer label) and `KEY.json` (fields: {", ".join(manifest.json_schema) or "none"}).
`manifest.json` lists every shard with its sample count and sha256; [`croissant.json`](croissant.json)
describes the files, splits, fields and class names in MLCommons Croissant 1.0.

{notes}

Licence: {licence}.

## Label histogram
{header}
{histogram}

## Load it

```python
# Hugging Face datasets (streaming)
from datasets import load_dataset
ds = load_dataset("path/or/hub-id", split="{first}", streaming=True)

# webdataset
import webdataset as wds
ds = wds.WebDataset("data/{first}-{{000000..{len(manifest.splits[first].shards) - 1:06d}}}.tar").decode("rgb8")

# the Deep Bootstrap trainer
#   python -m train run --data path/or/hf://datasets/ORG/NAME --mode real --n 50000
```

## Generation config

```json
{json.dumps(manifest.config, indent=1, sort_keys=True)}
```
(config hash `{manifest.config_hash}`; content `data_sha256` `{manifest.data_sha256()}`, the hash the trainer
keys its runs by; toolkit {manifest.toolkit_version})
"""


def card_text(manifest: Manifest, info: CardInfo | None) -> str:
    info = info or CardInfo()
    return card_yaml(manifest, info) + card_body(manifest, info)


def write_timm_info(out_dir: Path, manifest: Manifest) -> None:
    """timm's WebDataset reader (`wds/` datasets) reads split sizes and shard lists from `_info.json`."""
    info = {
        "name": Path(out_dir).name,
        "splits": {
            split: {
                "name": split,
                "num_samples": s.count,
                "filenames": [e.file for e in s.shards],
                "shard_lengths": [e.samples for e in s.shards],
            }
            for split, s in manifest.splits.items()
        },
    }
    write_json_atomic(Path(out_dir) / "_info.json", info)
