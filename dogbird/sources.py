"""Find the DogBird images in whatever ImageNet a user has: a folder tree, the Hub's parquet, or WebDataset tars.

    listing = list_source("/data/imagenet", stage_dir, ...)    # {"train": [Item...], "test": [Item...]}

Folder layouts are read in place: ILSVRC2012 `train/<wnid>/*.JPEG` with val in wnid folders (after the
common valprep.sh) or flat `val/ILSVRC2012_val_*.JPEG` labelled by Kaggle's `LOC_val_solution.csv` or the
devkit's ground truth + `meta.mat`; Kaggle's `ILSVRC/Data/CLS-LOC/{train,val}` nesting too. Parquet
(`ILSVRC/imagenet-1k`: `data/{train,validation}-NNNNN-of-NNNNN.parquet`, `image` {bytes, path}, `label`)
and WebDataset (`timm/imagenet-1k-wds`: `imagenet1k-{train,validation}-NNNN.tar`, members jpg/cls/json),
local or remote (hf://, https with {a..b} braces), are read once, sequentially, and only the rows of the
122 classes are copied (not decoded) into a stage folder `<out>/.work/stage-<hash>/{train,val}/<wnid>/`:
the build shuffles over the whole split, which needs random access that tars and parquet lack. A finished
build prunes the staged images and keeps their listing, so re-running it does not download them again.
Every image gets a source-independent id (`n02088094_1234`, `ILSVRC2012_val_00000123`), so the same
images give the same dataset whichever layout they came from.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dogbird.classes import dogbird_classes, imagenet_wnids
from dogbird.errors import DogbirdError
from dogbird.runner import map_unordered, no_bar
from shards.codec import group_samples
from shards.httpio import split_hub_url
from shards.jsonio import read_json, write_bytes_atomic, write_json_atomic
from shards.read import open_url
from shards.tario import iter_tar_members
from shards.urls import is_url
from shards.writer import SCRATCH_DIR

SPLIT_FOLDERS = {"train": "train", "test": "val"}  # output split -> ImageNet split folder
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
ID_RE = re.compile(r"(n\d{8}_\d+|ILSVRC2012_val_\d{8})")
WNID_RE = re.compile(r"n\d{8}")
UNIT_RE = re.compile(r"(?:^|[-_])(train|validation)-\d+(?:-of-\d+)?\.(parquet|tar)$")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_VAL = "LOC_val_solution.csv"
_READ_FAILED = "reading failed; check the network (and HF_TOKEN), then re-run: finished files are kept"
LISTING = "listing.json"  # a stage's items, kept after the staged images are pruned
LAYOUTS = (
    "an ILSVRC2012 folder (train/<wnid>/*.JPEG; val/<wnid>/*.JPEG, or flat val/ILSVRC2012_val_*.JPEG with "
    f"{KAGGLE_VAL} or the devkit's {GROUND_TRUTH} + meta.mat); Kaggle's ILSVRC/Data/CLS-LOC/{{train,val}}; "
    "the Hub's ILSVRC/imagenet-1k parquet (data/{train,validation}-NNNNN-of-NNNNN.parquet); WebDataset tars "
    "like timm/imagenet-1k-wds (imagenet1k-{train,validation}-NNNN.tar); each local, or hf://datasets/ORG/NAME, "
    "or an https:// URL with {a..b} braces"
)


@dataclass(frozen=True, order=True)
class Item:
    """One candidate image: sorted by `source_id`, so the order never depends on the layout."""

    source_id: str
    wnid: str
    path: str  # the local file to read
    where: str  # how the user finds it (relative to SOURCE, or the staged copy)


def source_id(name: str) -> str:
    """`n02088094_1234` / `ILSVRC2012_val_00000123` from any file or path name; else its safe stem."""
    match = ID_RE.search(name)
    if match:
        return match.group(1)
    stem = re.sub(r"[^A-Za-z0-9_-]", "", Path(name.replace("\\", "/")).name.split(".")[0])
    if not stem:
        raise ValueError(f"{name!r}: no usable image name")
    return stem


def list_source(
    source: str, out_dir: Path, workers: int = 1, use_ray: bool = False, bar: Callable = no_bar
) -> dict[str, list[Item]]:
    """Items of the 122 classes per output split ("train", "test"), sorted by source id.

    `bar(desc, total, unit)`: a progress-bar context (runner.no_bar: none) for the staging of parquet/tar files.
    """
    stage = stage_dir(out_dir, source)
    if (stage / LISTING).is_file():  # staged before (and maybe pruned by a finished build): no re-download
        return _read_listing(stage)
    if not is_url(source):
        root = Path(source)
        if not root.is_dir():
            raise DogbirdError(f"{source}: no such folder; give an ImageNet folder or URL ({LAYOUTS})")
        base = _folder_base(root)
        if base is not None:
            return {split: sorted(_list_split(root, base, folder)) for split, folder in SPLIT_FOLDERS.items()}
    units = _units(source)
    if not units:
        raise DogbirdError(f"{source}: empty or not a recognised ImageNet layout; accepted: {LAYOUTS}")
    _stage(units, stage, workers, use_ray, bar)
    items = {split: sorted(_list_split(stage, stage, folder, staged=True)) for split, folder in SPLIT_FOLDERS.items()}
    write_json_atomic(stage / LISTING, {split: [[i.source_id, i.wnid] for i in its] for split, its in items.items()})
    return items


def _staged_item(stage: Path, split: str, sid: str, wnid: str) -> Item:
    rel = f"{SPLIT_FOLDERS[split]}/{wnid}/{sid}.JPEG"  # where stage_unit puts it
    return Item(sid, wnid, str(stage / rel), f"staged:{rel}")


def _read_listing(stage: Path) -> dict[str, list[Item]]:
    """A stage's kept listing; its names are checked like any file's (no path can leave the stage)."""
    rows = read_json(stage / LISTING)
    classes = dogbird_classes()
    if set(rows) != set(SPLIT_FOLDERS) or not all(
        wnid in classes and re.fullmatch(r"[A-Za-z0-9_-]+", sid) for its in rows.values() for sid, wnid in its
    ):
        raise DogbirdError(f"{stage / LISTING}: not a listing written by dogbird; delete {stage} and re-run")
    return {split: [_staged_item(stage, split, sid, wnid) for sid, wnid in its] for split, its in rows.items()}


def stage_dir(out_dir: Path, source: str) -> Path:
    """Where a parquet or WebDataset source's DogBird images are staged."""
    return Path(out_dir) / SCRATCH_DIR / f"stage-{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def prune_stage(out_dir: Path, source: str) -> None:
    """Once the shards exist, drop the staged images (~17 GB for the full train set) but keep their listing:
    re-running a finished build then checks the shards without downloading the source again."""
    stage = stage_dir(out_dir, source)
    for path in stage.iterdir() if stage.is_dir() else ():
        if path.name != LISTING:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def drop_stage(out_dir: Path, source: str) -> None:
    shutil.rmtree(stage_dir(out_dir, source), ignore_errors=True)


# --- folder trees -----------------------------------------------------------------------------------------
def _folder_base(root: Path) -> Path | None:
    for base in (root / "ILSVRC" / "Data" / "CLS-LOC", root / "Data" / "CLS-LOC", root):
        if (base / "train").is_dir() or (base / "val").is_dir():
            return base
    return None


def _list_split(root: Path, base: Path, folder: str, staged: bool = False) -> list[Item]:
    split_dir = base / folder
    if not split_dir.is_dir():
        raise DogbirdError(
            f"{base}: no {folder}/ folder; DogBird takes its train split from ImageNet train "
            f"and its test split from ImageNet val, so the source needs both ({LAYOUTS})"
        )
    where = (lambda p: f"staged:{Path(p).relative_to(root)}") if staged else (lambda p: str(Path(p).relative_to(root)))
    classes = dogbird_classes()
    subdirs = [e for e in os.scandir(split_dir) if e.is_dir() and WNID_RE.fullmatch(e.name)]
    if subdirs or folder == "train":
        return [
            Item(source_id(f.name), d.name, f.path, where(f.path))
            for d in subdirs
            if d.name in classes
            for f in _image_files(d.path)
        ]
    labels = _val_labels(root, base)
    items = []
    for f in _image_files(str(split_dir)):
        sid = source_id(f.name)
        if sid not in labels:
            raise DogbirdError(
                f"{where(f.path)}: not in the val ground truth ({len(labels):,} images listed); "
                "is the ground truth file for ILSVRC2012 val?"
            )
        if labels[sid] in classes:
            items.append(Item(sid, labels[sid], f.path, where(f.path)))
    return items


def _image_files(folder: str) -> list[os.DirEntry]:
    return [f for f in os.scandir(folder) if f.is_file() and Path(f.name).suffix.lower() in IMAGE_SUFFIXES]


def _val_labels(root: Path, base: Path) -> dict[str, str]:
    """Flat val: id -> wnid from Kaggle's LOC_val_solution.csv or the devkit's ground truth + meta.mat."""
    folders = [base, *[p for p in base.parents if p == root or root in p.parents]]
    for d in folders:
        if (d / KAGGLE_VAL).is_file():
            return _kaggle_labels(d / KAGGLE_VAL)
    for d in folders:
        for data in (d, d / "data", d / "ILSVRC2012_devkit_t12" / "data"):
            if (data / GROUND_TRUTH).is_file():
                return _devkit_labels(data / GROUND_TRUTH, data / "meta.mat")
    raise DogbirdError(
        f"{base / 'val'}: flat val images but no labels; put Kaggle's {KAGGLE_VAL} or the devkit "
        f"(ILSVRC2012_devkit_t12/data/{GROUND_TRUTH} + meta.mat) next to it, or sort val into "
        "wnid folders (valprep.sh)"
    )


def _kaggle_labels(path: Path) -> dict[str, str]:
    """Kaggle's LOC_val_solution.csv: ImageId, PredictionString ("wnid x0 y0 x1 y1 wnid ..."; the first wnid
    is the image's class); another header or a row without a leading wnid is one clear error."""
    fix = f"use Kaggle's {KAGGLE_VAL} as it comes (header ImageId,PredictionString)"
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
                raise DogbirdError(f"{path}: header {reader.fieldnames}, not ImageId,PredictionString; {fix}")
            labels = {}
            for line, row in enumerate(reader, start=2):
                words = (row["PredictionString"] or "").split()
                if not words or not WNID_RE.fullmatch(words[0]):
                    raise DogbirdError(
                        f"{path}: line {line}: PredictionString {row['PredictionString']!r} does not "
                        f"start with a wnid (nNNNNNNNN); {fix}"
                    )
                labels[row["ImageId"]] = words[0]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DogbirdError(f"{path}: not a CSV file ({exc}); {fix}") from exc
    return labels


def _devkit_labels(ground_truth: Path, meta_mat: Path) -> dict[str, str]:
    """The devkit's 1-based ILSVRC2012_IDs are not the sorted-wnid index: map them through meta.mat."""
    if not meta_mat.is_file():
        raise DogbirdError(
            f"{meta_mat}: missing; the devkit's ground truth IDs need its meta.mat to name their classes"
        )
    import scipy.io  # deferred: only the devkit layout needs it

    synsets = scipy.io.loadmat(str(meta_mat), squeeze_me=True)["synsets"]
    # As torchvision's parse_devkit_archive: the 1000 leaves (num_children == 0) are the ILSVRC classes.
    id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    ids = [int(line) for line in ground_truth.read_text().split()]
    return {f"ILSVRC2012_val_{n:08d}": id_to_wnid[i] for n, i in enumerate(ids, start=1)}


# --- parquet and WebDataset: staged -----------------------------------------------------------------------
def _units(source: str) -> list[tuple[str, str, str]]:
    """(url or path, kind, ImageNet split folder) of every train/validation parquet file or tar."""
    if source.startswith("hf://"):
        from huggingface_hub import HfFileSystem  # deferred: network client, only for hf:// sources

        split_hub_url(source)  # a repo name the Hub forbids is one line here, not HfFileSystem's traceback
        fs, base = HfFileSystem(), source[len("hf://") :].rstrip("/")
        try:
            names = [f"hf://{p}" for pattern in ("*", "data/*") for p in fs.glob(f"{base}/{pattern}")]
        except OSError as exc:  # the hub client's HTTP errors (gated, not found, offline) are OSErrors
            raise DogbirdError(
                f"{source}: cannot list it on the Hugging Face Hub ({exc}); check the repo id, "
                "that you accepted its terms, HF_TOKEN and the network"
            ) from exc
    elif is_url(source):
        import braceexpand  # webdataset's dependency: the same {0000..1023} URL patterns it reads

        names = list(braceexpand.braceexpand(source))
    else:
        root = Path(source)
        names = [str(p) for pattern in ("*", "data/*") for p in sorted(root.glob(pattern))]
    units = []
    for name in names:
        match = UNIT_RE.search(name.rsplit("/", 1)[-1])
        if match:
            units.append((name, match.group(2), "train" if match.group(1) == "train" else "val"))
    return sorted(units)


def _stage(units, stage: Path, workers: int, use_ray: bool, bar: Callable) -> None:
    todo = [(url, kind, folder, str(stage)) for url, kind, folder in units if not _marker(stage, url).is_file()]
    with bar("staging dog and bird images", len(todo), "file") as progress:
        for _ in map_unordered(stage_unit, todo, workers, use_ray):
            progress.update(1)


def _marker(stage: Path, url: str) -> Path:
    return stage / ".done" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.json"


def stage_unit(url: str, kind: str, folder: str, stage: str) -> int:
    """Copy the 122 classes' images of one parquet file or tar into the stage; a marker makes it resumable."""
    stage_dir, classes, wnids = Path(stage), dogbird_classes(), imagenet_wnids()
    rows = _parquet_rows(url) if kind == "parquet" else _tar_rows(url)
    count = 0
    for name, label, data in rows:
        if not (isinstance(label, int) and 0 <= label < len(wnids)) or wnids[label] not in classes:
            continue  # other classes, and the unlabelled test split (label -1)
        try:
            sid = source_id(name)
        except ValueError as exc:
            raise DogbirdError(f"{url}: {exc}; is this an ImageNet source?") from exc
        dest = stage_dir / folder / wnids[label] / f"{sid}.JPEG"
        if dest.is_file() and dest.read_bytes() != data:  # equal bytes: this unit staged again after a kill
            raise DogbirdError(
                f"{url}: {name!r} is ImageNet image {sid}, which another row of the source holds "
                "with other bytes; keep one row per image and re-run"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data)
        count += 1
    marker = _marker(stage_dir, url)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"url": url, "images": count})
    return count


def _parquet_rows(url: str) -> Iterator[tuple[str, int, bytes]]:
    import io

    import pyarrow.parquet as pq  # deferred: only parquet sources need it

    with open_url(url) as stream:
        if not getattr(stream, "seekable", lambda: False)():
            stream = io.BytesIO(stream.read())  # plain HTTP: parquet needs random access to its footer
        try:
            batches = pq.ParquetFile(stream).iter_batches(columns=["label", "image"], batch_size=256)
            row = 0
            for batch in batches:
                labels = batch.column("label").to_pylist()
                images = batch.column("image")
                for i, label in enumerate(labels):
                    if _parquet_label(url, row + i, label) is not None and 0 <= label < 1000:
                        name, data = _parquet_image(url, row + i, images[i].as_py())
                        yield name, label, data
                row += len(labels)
        except (KeyError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DogbirdError(
                f"{url}: not an ImageNet parquet file with columns image {{bytes, path}} and label ({exc})"
            ) from exc
        except OSError as exc:
            raise DogbirdError(f"{url}: {_READ_FAILED} ({exc})") from exc


def _parquet_label(url: str, row: int, label) -> int | None:
    """A row's label: an integer class index, or None (unlabelled); anything else is no ImageNet file."""
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise DogbirdError(
            f"{url}: row {row}: label {label!r} is a {type(label).__name__}, not an ImageNet class "
            "index (0-999); is this an ImageNet parquet file?"
        )
    return label


def _parquet_image(url: str, row: int, image) -> tuple[str, bytes]:
    """A row's image {bytes, path} -> (path, bytes); a null, bare-bytes or other image is one clear error."""
    if not (isinstance(image, dict) and isinstance(image.get("bytes"), bytes)):
        what = "null" if image is None or isinstance(image, dict) else f"a {type(image).__name__} value"
        raise DogbirdError(
            f"{url}: row {row}: its image is {what}, where an ImageNet parquet file has "
            "image {bytes, path} with the file's bytes in every row"
        )
    return image.get("path") or "", image["bytes"]


def _tar_rows(url: str) -> Iterator[tuple[str, int, bytes]]:
    with open_url(url) as stream:
        try:
            for key, fields in group_samples(iter_tar_members(stream, url), url):
                image = fields.get("jpg") or fields.get("jpeg") or fields.get("png")
                if image is None or "cls" not in fields:
                    continue
                meta = json.loads(fields["json"]) if "json" in fields else {}
                yield str(meta.get("filename") or key), int(fields["cls"]), image
        except ValueError as exc:
            raise DogbirdError(f"{url}: unreadable WebDataset tar ({exc})") from exc
        except OSError as exc:
            raise DogbirdError(f"{url}: {_READ_FAILED} ({exc})") from exc


def missing_classes(items: dict[str, list[Item]]) -> dict[str, list[str]]:
    """Split -> the DogBird wnids with no image in it."""
    wanted = dogbird_classes()
    return {
        split: sorted(set(wanted) - {i.wnid for i in its})
        for split, its in items.items()
        if set(wanted) - {i.wnid for i in its}
    }
