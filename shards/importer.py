"""Import any labelled image dataset into our format: `python -m shards import SOURCE --out DIR`.

    python -m shards import uoft-cs/cifar10 --out out/cifar10          # a Hub dataset id (streamed)
    python -m shards import /data/my-parquet-folder --out out/mine      # data/train-*.parquet, ...
    python -m shards import /data/images --out out/mine                 # SPLIT/CLASS/*.png

All three go through `datasets.load_dataset(SOURCE, streaming=True)`: it reads Hub repos, local parquet
folders (split from the file names) and the `SPLIT/CLASS/...` image folder layout, and in streaming mode
it writes no Arrow cache outside --out; a folder of WebDataset tars (`train-000000.tar`, ...) is read by
its webdataset builder. The image and label columns are the dataset's one `Image` and one `ClassLabel`
feature unless named; class names come from that `ClassLabel`, or from `--class-names` for an integer
label column (`cls` or `label`, e.g. plain WebDataset tars). Each split is kept, its rows in source order;
the image is decoded (16-bit greyscale scaled to 8 bits, float images in [0, 1] scaled, others refused:
`shards.codec.to_8bit`) and stored as PNG (or JPEG), grey if the source's first image is grey
(`--channels`), else RGB; the label as `cls`, and `json` holds the row number in the source split. Writing goes through `shards.DatasetWriter`, so the result is
deterministic and resumable: complete shards are skipped (their rows are read but not decoded).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from shards.card import CardInfo, License
from shards.codec import to_8bit
from shards.errors import ShardsError
from shards.identity import InputIdentity, identify_files, identify_folder, identity_of, portable_path
from shards.manifest import MIN_SHARDS
from shards.naming import validate_name
from shards.writer import DatasetWriter

log = logging.getLogger(__name__)

SAMPLES_PER_SHARD = 10_000


@dataclass(frozen=True)
class ImportSource:
    """A `datasets` source opened for streaming, with its image/label columns, classes and split sizes."""

    source: str
    splits: dict[str, Any]  # split name -> datasets.IterableDataset (image column not decoded)
    image_column: str
    label_column: str
    class_names: list[str]
    counts: dict[str, int]
    identity: InputIdentity  # what the source is: its files' hashes, or the Hub revision it was read at
    channels: int = 3  # 1: grey sources stay grey (see image_channels)

    @property
    def name(self) -> str:
        """How the dataset records its source: the Hub id, or the folder's own name (never its path)."""
        return self.identity.name


def source_identity(source: str) -> InputIdentity:
    """A local folder (or file): every file's relative path, size and sha256. A Hub id: the commit its main
    branch points at now, which `load_streaming` then reads, so a later push cannot slip into a resume."""
    path = Path(source)
    if path.is_dir():
        return identify_folder(path)
    if path.is_file():
        return identify_files(portable_path(path), path.resolve().parent, [path.resolve().name])
    from huggingface_hub import HfApi  # heavy: imported only by the import command

    try:
        revision = HfApi().dataset_info(source).sha
    except Exception as exc:  # noqa: BLE001 - offline, 404, auth, bad id: all end the same way
        raise ShardsError(
            f"{source}: cannot read its revision on the Hugging Face Hub ({type(exc).__name__}); "
            "check the id, the network and HF_TOKEN, or give a local folder"
        ) from None
    return identity_of(source, (), revision=revision)


def load_streaming(source: str, revision: str | None = None):
    """`datasets.load_dataset(source, streaming=True)` with its failures turned into one clear error."""
    import datasets  # heavy: imported only by the import command

    path = Path(source)
    where = "local folder" if path.exists() else "Hub dataset id"
    try:
        loaded = datasets.load_dataset(source, streaming=True, revision=revision)
    except Exception as exc:  # datasets raises many types (FileNotFound, DatasetNotFound, HTTP, ValueError)
        raise ShardsError(
            f"{source}: cannot open as a {where} with `datasets` ({type(exc).__name__}: {exc}); "
            "give a Hub id (ORG/NAME), a folder of parquet files, or a SPLIT/CLASS/*.png "
            "image folder"
        ) from exc
    if not isinstance(loaded, datasets.IterableDatasetDict):
        loaded = datasets.IterableDatasetDict({"train": loaded})
    return loaded


def pick_column(features: dict[str, Any], kind: type, given: str | None, flag: str, source: str) -> str:
    """The column named by `flag`, else the one feature of type `kind`."""
    if given is not None:
        if given not in features:
            raise ShardsError(f"{source}: {flag} {given!r} is not a column (columns: {', '.join(features)})")
        return given
    found = [name for name, feature in features.items() if isinstance(feature, kind)]
    if len(found) != 1:
        raise ShardsError(
            f"{source}: found {len(found)} {kind.__name__} columns ({', '.join(found) or 'none'}) "
            f"among {', '.join(features)}; name the one to use with {flag}"
        )
    return found[0]


def open_source(
    source: str,
    image_column: str | None = None,
    label_column: str | None = None,
    splits: list[str] | None = None,
    class_names: list[str] | None = None,
    channels: str = "auto",
) -> ImportSource:
    """Open `source`, detect the columns and class names, and count every split's rows.

    `class_names` names the classes of an integer label column (sources without a ClassLabel, such as
    WebDataset tars with `cls` members); `channels` is "auto" (grey if the first image is), "1" or "3"."""
    from datasets import Image

    path = Path(source)
    if not path.exists() and (path.is_absolute() or source.startswith(".") or source.count("/") > 1):
        raise ShardsError(f"{source}: no such folder (and not a Hub id ORG/NAME); check the path")
    identity = source_identity(source)
    loaded = load_streaming(source, identity.revision)
    chosen = splits or list(loaded)
    unknown = [s for s in chosen if s not in loaded]
    if unknown:
        raise ShardsError(f"{source}: no split {unknown[0]!r} (splits: {', '.join(loaded)}); fix --splits")
    for split in chosen:
        validate_name("split", split)
    first = loaded[chosen[0]]
    features = first.features
    if features is None:
        raise ShardsError(
            f"{source}: `datasets` could not tell its columns without reading it; export it "
            "as parquet with features, or as a SPLIT/CLASS/*.png image folder"
        )
    image = pick_column(features, Image, image_column, "--image-column", source)
    label, names = label_column_and_names(features, label_column, class_names, source)
    streams = {s: loaded[s].cast_column(image, Image(decode=False)) for s in chosen}
    counts = {s: split_count(loaded[s], label) for s in chosen}
    depth = image_channels(streams[chosen[0]], image, channels, source)
    return ImportSource(source, streams, image, label, names, counts, identity, depth)


def label_column_and_names(
    features: dict[str, Any], given: str | None, class_names: list[str] | None, source: str
) -> tuple[str, list[str]]:
    """The label column and the class names: a ClassLabel's own names, or `class_names` for an integer
    column (the one ClassLabel, else the named column, else `cls` or `label`)."""
    from datasets import ClassLabel, Value

    if class_names is None:
        label = pick_column(features, ClassLabel, given, "--label-column", source)
        if not isinstance(features[label], ClassLabel):
            raise ShardsError(
                f"{source}: --label-column {label!r} is {features[label]}, not a ClassLabel, so it "
                "has no class names; choose the ClassLabel column or give --class-names"
            )
        return label, list(features[label].names)
    for name in class_names:
        if not name.strip():
            raise ShardsError(f"--class-names: an empty class name in {class_names!r}; give one name per class")
    candidates = (
        [given]
        if given
        else [n for n, f in features.items() if isinstance(f, ClassLabel)]
        or [n for n in ("cls", "label") if n in features]
    )
    if len(candidates) != 1 or candidates[0] not in features:
        raise ShardsError(
            f"{source}: no label column to name the classes of (columns: {', '.join(features)}); "
            "name it with --label-column"
        )
    label, feature = candidates[0], features[candidates[0]]
    if isinstance(feature, ClassLabel) and feature.num_classes != len(class_names):
        raise ShardsError(
            f"{source}: --class-names gives {len(class_names)} names, the ClassLabel {label!r} has "
            f"{feature.num_classes}; give one name per class"
        )
    integer = isinstance(feature, Value) and feature.dtype.startswith(("int", "uint"))
    if not isinstance(feature, ClassLabel) and not integer:
        raise ShardsError(
            f"{source}: label column {label!r} is {feature}, not integer labels; choose another with --label-column"
        )
    return label, list(class_names)


GREY_MODES = {"1", "L", "I", "I;16", "F", "LA"}  # PIL modes without colour


def image_channels(stream, column: str, channels: str, source: str) -> int:
    """1 or 3: as asked, or with "auto" 1 when the source's first image is grey (PIL mode L, I, ...)."""
    if channels in ("1", "3"):
        return int(channels)
    first = next(iter(stream.select_columns([column]).take(1)), None)
    if first is None:
        return 3
    return 1 if open_image(first[column], f"{source}: first image").mode in GREY_MODES else 3


def open_image(value: dict[str, Any], where: str):
    """An undecoded `datasets` Image value ({bytes, path}) -> a PIL image, or one clear error."""
    from datasets import Image

    try:
        pil = Image().decode_example(value)
        pil.load()
        return pil
    except Exception as exc:  # PIL raises several types for a bad image; all mean "unreadable"
        raise ShardsError(f"{where}: unreadable image ({exc}); fix or remove it in the source") from exc


def split_count(stream, label_column: str) -> int:
    """Rows in a split: from the dataset's card when it says, else by reading the label column once."""
    info = stream.info.splits
    split = stream.split and str(stream.split)
    if info and split in info and info[split].num_examples:
        return int(info[split].num_examples)
    return sum(1 for _ in stream.select_columns([label_column]))


def decode_image(value: dict[str, Any], channels: int, where: str) -> np.ndarray:
    """An undecoded `datasets` Image value -> uint8 HxWx3, or HxWx1 for a grey dataset (a colour image in
    it is an error: converting it would lose its colour); 16-bit and float images are scaled to 8 bits."""
    try:
        pil = to_8bit(open_image(value, where))  # 16-bit scaled, not clipped by convert()
    except ValueError as exc:
        raise ShardsError(f"{where}: {exc}") from exc
    if channels == 3:
        return np.asarray(pil.convert("RGB"))
    if pil.mode not in GREY_MODES:
        raise ShardsError(
            f"{where}: a {pil.mode} image in a source whose first image is grey; pass --channels 3 "
            "to store every image as RGB"
        )
    return np.asarray(pil.convert("L"))[:, :, None]


def shard_samples(src: ImportSource, split: str, rows, first_index: int, count: int) -> Iterator[dict]:
    """Our sample dicts for `count` rows (numbered from `first_index`) of the source split."""
    yielded = 0
    for index, row in enumerate(islice(rows, count), start=first_index):
        where = f"{src.source} split {split} row {index}"
        label = row[src.label_column]
        if not isinstance(label, int) or not 0 <= label < len(src.class_names):
            raise ShardsError(
                f"{where}: label {label!r} is not in [0, {len(src.class_names)}); "
                "unlabelled rows cannot be imported: choose labelled splits with --splits"
            )
        yield {"image": decode_image(row[src.image_column], src.channels, where), "cls": label, "json": {"row": index}}
        yielded += 1
    if yielded < count:
        raise ShardsError(
            f"{src.source} split {split}: ended after {first_index + yielded:,} rows, but its dataset card states "
            f"{src.counts[split]:,}; fix the card's num_examples (or remove them to have rows counted)"
        )


def import_config(src: ImportSource, image_ext: str) -> dict[str, Any]:
    config = {
        "kind": "import",
        "source": src.name,
        "source_files": src.identity.to_dict(),
        "image_column": src.image_column,
        "label_column": src.label_column,
        "image_ext": image_ext,
    }
    return config if src.channels == 3 else {**config, "channels": 1}  # RGB imports keep their hash


def import_dataset(
    src: ImportSource,
    out_dir: str | Path,
    samples_per_shard: int = SAMPLES_PER_SHARD,
    image_ext: str = "png",
    overwrite: bool = False,
    progress=None,
    license: License | None = None,
    min_shards: int = MIN_SHARDS,
):
    """Write every split of `src` into `out_dir` (resumable); return the manifest."""
    license = license or License()
    card = CardInfo(
        pretty_name=f"{src.name} (imported)",
        annotations_creators=("found",),
        description=f"`{src.name}` imported with `python -m shards import`: one sample per source "
        "row, in source order; `json.row` is the row's number in its split.",
        source_datasets=(src.name,),
        tags=("deep-bootstrap", "webdataset"),
        license=license.id,
        license_name=license.name,
        license_link=license.link,
    )
    writer = DatasetWriter(
        out_dir,
        import_config(src, image_ext),
        src.class_names,
        dict(src.counts),
        samples_per_shard,
        image_ext=image_ext,
        card=card,
        overwrite=overwrite,
        min_shards=min_shards,
    )
    writer.prepare()
    pending = {s.stem for s in writer.pending()}
    try:
        for split, stream in src.splits.items():
            _import_split(src, split, iter(stream), writer, pending, progress)
    except OSError as exc:  # network or disk trouble while streaming (requests/hub errors are OSErrors)
        raise ShardsError(
            f"{src.source}: import stopped ({type(exc).__name__}: {exc}); committed shards are "
            "kept, re-run the same command to resume"
        ) from exc
    return writer.finalize()


def _import_split(src: ImportSource, split: str, rows, writer: DatasetWriter, pending: set[str], progress) -> None:
    """Write the pending shards of one split from its row stream, reading past the complete ones."""
    for spec in (s for s in writer.plan() if s.split == split):
        if spec.stem not in pending:
            skipped = sum(1 for _ in islice(rows, spec.count))  # complete: read past, never decode
            if skipped != spec.count:
                raise ShardsError(
                    f"{src.source} split {split}: ended after {spec.first_index + skipped:,} rows, "
                    f"{src.counts[split]:,} expected; the source changed, use another --out"
                )
        else:
            writer.write_shard(spec, shard_samples(src, split, rows, spec.first_index, spec.count))
        if progress:
            progress.update(spec.count)
    if next(rows, None) is not None:
        raise ShardsError(
            f"{src.source} split {split}: more rows than the {src.counts[split]:,} its dataset card "
            "states; fix the card's num_examples (or remove them to have rows counted)"
        )
