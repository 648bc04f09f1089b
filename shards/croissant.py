"""`croissant.json`: the dataset described in MLCommons Croissant 1.0 (mlcommons.org/croissant/1.0), made
from the manifest beside the card.

    write_croissant(out_dir, manifest, info)

Each shard is a `FileObject` (a tar, with its sha256); per split, two `FileSet`s select the image and the
`.cls` members inside that split's tars, and a `RecordSet` joins them on the sample key (the member name
before its extension, as webdataset groups them): `SPLIT/key`, `SPLIT/image`, `SPLIT/label`. The class
names are an inline enumeration `class_names` (`index`, `name`) that `SPLIT/label` references. Members
`KEY.json` are not described: their fields are in the card's `dataset_info`. Written by hand as JSON-LD,
so making a dataset needs no mlcroissant; the tests validate and load it with mlcroissant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shards.card import CardInfo
from shards.jsonio import write_json_atomic
from shards.manifest import Manifest

CROISSANT = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
# The @context every Croissant 1.0 file carries (as mlcroissant writes it).
CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


def _file_objects(manifest: Manifest) -> list[dict[str, Any]]:
    return [
        {
            "@type": "cr:FileObject",
            "@id": e.file,
            "name": e.file,
            "contentUrl": e.file,
            "encodingFormat": "application/x-tar",
            "contentSize": f"{e.bytes} B",
            "sha256": e.sha256,
        }
        for s in manifest.splits.values()
        for e in s.shards
    ]


def _file_sets(manifest: Manifest) -> list[dict[str, Any]]:
    sets = []
    for split, info in manifest.splits.items():
        tars = [{"@id": e.file} for e in info.shards]
        for what, ext, kind in (
            ("images", manifest.image_ext, IMAGE_TYPES[manifest.image_ext]),
            ("labels", "cls", "text/plain"),
        ):
            sets.append(
                {
                    "@type": "cr:FileSet",
                    "@id": f"{split}-{what}",
                    "name": f"{split}-{what}",
                    "containedIn": tars,
                    "encodingFormat": kind,
                    "includes": f"*.{ext}",
                }
            )
    return sets


def _key_source(file_set: str, ext: str) -> dict[str, Any]:
    """The sample key of a member: its file name before the extension (keys are [a-z0-9_-], no dots)."""
    return {
        "fileSet": {"@id": file_set},
        "extract": {"fileProperty": "filename"},
        "transform": {"regex": f"^([a-z0-9_-]+)\\.{ext}$"},
    }


def _field(record_set: str, name: str, kind: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"@type": "cr:Field", "@id": f"{record_set}/{name}", "name": name, "dataType": kind, "source": source}


def _split_record_sets(split: str, ext: str) -> list[dict[str, Any]]:
    """SPLIT (key, image) and SPLIT_labels (key, label): one record per sample each, the same keys."""
    images, labels = f"{split}-images", f"{split}-labels"
    content = {"extract": {"fileProperty": "content"}}
    return [
        {
            "@type": "cr:RecordSet",
            "@id": split,
            "name": split,
            "key": {"@id": f"{split}/key"},
            "field": [
                _field(split, "key", "sc:Text", _key_source(images, ext)),
                _field(split, "image", "sc:ImageObject", {"fileSet": {"@id": images}, **content}),
            ],
        },
        {
            "@type": "cr:RecordSet",
            "@id": f"{split}_labels",
            "name": f"{split}_labels",
            "description": "the label of each sample: an index into class_names",
            "key": {"@id": f"{split}_labels/key"},
            "field": [
                _field(f"{split}_labels", "key", "sc:Text", _key_source(labels, "cls")),
                _field(f"{split}_labels", "label", "sc:Integer", {"fileSet": {"@id": labels}, **content}),
            ],
        },
    ]


def _class_names(manifest: Manifest) -> dict[str, Any]:
    return {
        "@type": "cr:RecordSet",
        "@id": "class_names",
        "name": "class_names",
        "dataType": "sc:Enumeration",
        "key": {"@id": "class_names/index"},
        "field": [
            {"@type": "cr:Field", "@id": "class_names/index", "name": "index", "dataType": "sc:Integer"},
            {"@type": "cr:Field", "@id": "class_names/name", "name": "name", "dataType": "sc:Text"},
        ],
        "data": [{"class_names/index": i, "class_names/name": n} for i, n in enumerate(manifest.class_names)],
    }


def croissant_metadata(manifest: Manifest, name: str, description: str, license: str) -> dict[str, Any]:
    """The Croissant JSON-LD of a dataset: files, splits, fields and class names."""
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "conformsTo": CONFORMS_TO,
        "description": description or name,
        "license": license,
        "url": "https://huggingface.co/datasets",
        "version": "1.0.0",
        "citeAs": "Nakkiran, Neyshabur, Sedghi. The Deep Bootstrap Framework. ICLR 2021.",
        "distribution": _file_objects(manifest) + _file_sets(manifest),
        "recordSet": [_class_names(manifest)]
        + [r for split in manifest.splits for r in _split_record_sets(split, manifest.image_ext)],
    }


def write_croissant(out_dir: Path, manifest: Manifest, info: CardInfo | None) -> None:
    info = info or CardInfo()
    license = info.license_link if info.license == "other" else info.license
    write_json_atomic(
        Path(out_dir) / CROISSANT, croissant_metadata(manifest, info.pretty_name, info.description, license)
    )
