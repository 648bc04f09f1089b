"""The Hugging Face dataset card (`README.md`) and timm's `_info.json`, both made from the manifest.

The card's YAML declares `configs` (data files per split) and `dataset_info.features` with every field's
type, because HF `datasets` otherwise infers the schema from the first samples it reads
(datasets/packaged_modules/webdataset/webdataset.py, `NUM_EXAMPLES_FOR_FEATURES_INFERENCE = 5`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from shards.jsonio import write_json_atomic
from shards.manifest import Manifest

JSON_TO_HF = {"int": "int64", "float": "float64", "str": "string", "bool": "bool", "null": "null"}


@dataclass(frozen=True)
class CardInfo:
    """What the card says beyond the manifest: provenance, licence, and the labeler's measured quality."""

    pretty_name: str = "Deep Bootstrap dataset"
    description: str = ""
    license: str = "other"
    task_categories: tuple[str, ...] = ("image-classification",)
    annotations_creators: tuple[str, ...] = ("machine-generated",)
    source_datasets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ("deep-bootstrap", "webdataset")
    notes: tuple[str, ...] = field(default_factory=tuple)


def size_category(n: int) -> str:
    for limit, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]:
        if n < limit:
            return name
    return "100M<n<1B"


def _feature_yaml(name: str, kind: str, indent: str) -> list[str]:
    if kind.startswith("list["):
        inner = JSON_TO_HF[kind[5:-1]]
        return [f"{indent}- name: {name}", f"{indent}  list: {inner}"]
    return [f"{indent}- name: {name}", f"{indent}  dtype: {JSON_TO_HF[kind]}"]


def _yaml_list(key: str, values) -> list[str]:
    return [f"{key}:"] + [f"- {v}" for v in values] if values else []


def card_yaml(manifest: Manifest, info: CardInfo) -> str:
    total = sum(s.count for s in manifest.splits.values())
    lines = ["---", f"pretty_name: {json.dumps(info.pretty_name)}", f"license: {info.license}"]
    lines += _yaml_list("task_categories", info.task_categories)
    lines += _yaml_list("size_categories", [size_category(total)])
    lines += _yaml_list("annotations_creators", info.annotations_creators)
    lines += _yaml_list("source_datasets", info.source_datasets)
    lines += _yaml_list("tags", info.tags)
    lines += ["configs:", "- config_name: default", "  data_files:"]
    for split in manifest.splits:
        lines += [f"  - split: {split}", f"    path: data/{split}-*.tar"]
    lines += ["dataset_info:", "  features:", f"  - name: {manifest.image_ext}", "    dtype: image",
              "  - name: cls", "    dtype:", "      class_label:", "        names:"]
    lines += [f"          '{i}': {json.dumps(name)}" for i, name in enumerate(manifest.class_names)]
    if manifest.json_schema:
        lines += ["  - name: json", "    struct:"]
        for name, kind in manifest.json_schema.items():
            lines += _feature_yaml(name, kind, "    ")
    lines += ["  - name: __key__", "    dtype: string", "  - name: __url__", "    dtype: string", "  splits:"]
    for split, s in manifest.splits.items():
        lines += [f"  - name: {split}", f"    num_examples: {s.count}",
                  f"    num_bytes: {sum(e.bytes for e in s.shards)}"]
    lines.append("---")
    return "\n".join(lines) + "\n"


def card_body(manifest: Manifest, info: CardInfo) -> str:
    splits = ", ".join(f"{name}: {s.count:,}" for name, s in manifest.splits.items())
    first = next(iter(manifest.splits))
    classes = ", ".join(f"{i} {n}" for i, n in enumerate(manifest.class_names))
    histogram = "\n".join(
        f"| {split} | " + " | ".join(str(c) for c in s.label_histogram) + " |" for split, s in manifest.splits.items()
    )
    header = "| split | " + " | ".join(manifest.class_names) + " |\n|" + "---|" * (len(manifest.class_names) + 1)
    notes = "\n".join(f"- {n}" for n in info.notes)
    return f"""
# {info.pretty_name}

{info.description}

Samples: {splits}. Classes: {classes}.
Format: WebDataset tar shards `data/{{split}}-NNNNNN.tar`; each sample is `KEY.{manifest.image_ext}` (the
image), `KEY.cls` (integer label) and `KEY.json` (fields: {', '.join(manifest.json_schema) or 'none'}).
`manifest.json` lists every shard with its sample count and sha256.

{notes}

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
