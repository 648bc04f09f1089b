"""Build the DogBird dataset: list -> shuffle -> scan -> shards -> manifest -> fixed-size copies. Resumable.

    result = run_build(BuildConfig(source, out_dir).validate(), bar=tqdm_bar)

1. list the source's images of the 122 classes per split, sorted by a source-independent id (sources.py);
2. shuffle each split with a generator seeded by (seed, split) alone;
3. scan: decode every image cheaply (images.check_image) so the unreadable ones are known and listed
   before any key is given: keys are dense indices within a split, so a shard's first key depends on
   every skip before it (measured: the scan costs ~1/4 of the per-image work, bench/RESULTS.md);
4. write the shards (`build_shard`, the unit of work: a pure function of its arguments, run here, in worker
   processes or on Ray); complete shards are kept, so a killed build resumes where it stopped;
5. manifest.json (with the skipped files), card; 6. each `--res R` copy from the finished shards (`res_shard`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dogbird.classes import CLASS_NAMES, dogbird_classes
from dogbird.config import BuildConfig, source_listing
from dogbird.errors import DogbirdError
from dogbird.images import check_image, to_fixed, to_jpeg
from dogbird.runner import map_unordered, no_bar
from dogbird.sources import Item, drop_stage, list_source, missing_classes, prune_stage
from shards import CardInfo, DatasetWriter, Manifest, ShardSpec, ShardStats, derive_seed, iter_shard
from shards.identity import InputIdentity
from shards.jsonio import read_json, write_json_atomic
from shards.writer import SCRATCH_DIR, is_dataset_folder

log = logging.getLogger(__name__)

SCAN_CHUNK = 500  # images per scan task: big enough to amortise a task, small enough to balance workers
# What a broken image file raises in PIL (truncated, not an image, bad PNG chunks, decompression bombs).
DATA_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@dataclass
class BuildResult:
    manifest: Manifest
    skipped: list[dict[str, str]]
    written: int = 0
    res_dirs: list[str] = field(default_factory=list)


def order_items(items: list[Item], seed: int, split: str) -> list[Item]:
    """The split's items in seeded random order (input sorted by source id, so layout-independent)."""
    return [items[i] for i in np.random.default_rng(derive_seed(seed, split, 0)).permutation(len(items))]


def _reason(exc: BaseException) -> str:
    # PIL names in-memory files by address ("<_io.BytesIO object at 0x7f..>"): drop it so reruns match.
    return re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", f"{type(exc).__name__}: {exc}")


def scan_chunk(items: list[Item], size: int = 0) -> list[dict[str, str]]:
    """The images among `items` that cannot be read (or resized to shorter side `size`), each as
    {split-free file, source_id, reason}."""
    bad = []
    for item in items:
        try:
            check_image(Path(item.path).read_bytes(), size)
        except DATA_ERRORS as exc:
            bad.append({"file": item.where, "source_id": item.source_id, "reason": _reason(exc)})
    return bad


def make_sample(item: Item, data: bytes, image_config: dict[str, int]) -> dict[str, Any]:
    cls = dogbird_classes()[item.wnid]
    image = to_jpeg(data, image_config["size"], image_config["quality"], image_config["center_crop"])
    meta = {"wnid": item.wnid, "imagenet_index": cls.index, "class_name": cls.name, "source_id": item.source_id}
    return {"image": image, "cls": cls.label, "json": meta}


def build_shard(writer: DatasetWriter, spec: ShardSpec, items: list[Item]) -> ShardStats:
    """Decode, resize and re-encode the shard's images and commit the shard (the unit of work)."""
    image_config = writer.config["image"]

    def samples():
        for item in items:
            try:
                yield make_sample(item, Path(item.path).read_bytes(), image_config)
            except DATA_ERRORS as exc:
                raise DogbirdError(
                    f"{item.where}: passed the scan but failed to decode ({_reason(exc)}) while "
                    f"writing {spec.relpath}; re-run the same command to rescan"
                ) from exc

    return writer.write_shard(spec, samples())


def res_shard(writer: DatasetWriter, spec: ShardSpec, jpeg_shard: str, res: int) -> ShardStats:
    """One shard of a --res copy: the same samples as `jpeg_shard`, as res x res centre crops (PNG)."""
    samples = (
        {"image": to_fixed(data, res), "cls": cls, "json": meta}
        for _, data, cls, meta in iter_shard(jpeg_shard, decode=False)
    )
    return writer.write_shard(spec, samples)


def run_build(cfg: BuildConfig, bar: Callable = no_bar) -> BuildResult:
    """Steps 1-6 of the module docstring; returns the manifest and what was skipped."""
    out = Path(cfg.out_dir)
    check_out_dir(out)
    listed = list_source(cfg.source, out, cfg.workers, cfg.ray, bar)
    _check_classes(listed, cfg)
    _check_unique_ids(listed, cfg)
    ordered = {split: order_items(items, cfg.seed, split) for split, items in listed.items()}
    files = source_listing(
        (i.where, i.path) for items in listed.values() for i in items if not i.where.startswith("staged:")
    )
    skipped, scan_file = cached_scan(out, listed, ordered, cfg, bar, files.sha256)
    bad = {(s["split"], s["source_id"]) for s in skipped}
    kept = {split: [i for i in items if (split, i.source_id) not in bad] for split, items in ordered.items()}
    writer = dataset_writer(cfg, kept, files)
    writer.prepare()
    pending = writer.pending()
    tasks = [(writer, spec, kept[spec.split][spec.first_index : spec.first_index + spec.count]) for spec in pending]
    if not all(Path(item.path).is_file() for _, _, items in tasks for item in items):
        log.info("the staged source copy was pruned by an earlier complete build: staging it again")
        drop_stage(out, cfg.source)
        return run_build(cfg, bar)
    try:
        with bar("writing shards", sum(s.count for s in pending), "img") as progress:
            for stats in map_unordered(build_shard, tasks, cfg.workers, cfg.ray):
                progress.update(stats.samples)
    except DogbirdError:
        scan_file.unlink(missing_ok=True)  # a file changed since it was scanned: the next run rescans
        raise
    manifest = writer.finalize(skipped=skipped)
    if manifest is None:  # only when another process deleted shards under us
        raise DogbirdError(f"{out}: shards went missing while building; re-run the same command")
    prune_stage(out, cfg.source)
    res_dirs = [str(build_res_copy(writer, cfg, r, bar)) for r in cfg.res]
    return BuildResult(manifest, skipped, sum(s.count for s in pending), res_dirs)


def check_out_dir(out: Path) -> None:
    """Refuse a non-empty folder that is not a DogBird build before anything is written into it."""
    if not out.is_dir() or is_dataset_folder(out):
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name != SCRATCH_DIR and not re.fullmatch(r"res\d+", p.name))
    if foreign:
        raise DogbirdError(
            f"{out}: not empty and not a dataset being built by this toolkit (found "
            f"{', '.join(foreign[:5])}); choose an empty or new --out"
        )


def _check_classes(listed: dict[str, list[Item]], cfg: BuildConfig) -> None:
    for split, items in listed.items():
        if not items:
            raise DogbirdError(f"{cfg.source}: no hunting-dog or bird images in its {split} split; is it ImageNet?")
    missing = missing_classes(listed)
    if missing and not cfg.allow_missing_classes:
        classes = dogbird_classes()
        parts = [
            f"{split}: " + ", ".join(f"{w} ({classes[w].name.split(',')[0]})" for w in wnids)
            for split, wnids in missing.items()
        ]
        most = max(len(wnids) for wnids in missing.values())
        raise DogbirdError(
            f"{cfg.source}: missing {most} of the {len(classes)} DogBird classes ({'; '.join(parts)}); "
            "use the full ImageNet, or pass --allow-missing-classes to build without them"
        )


def _check_unique_ids(listed: dict[str, list[Item]], cfg: BuildConfig) -> None:
    """Refuse two files with one ImageNet id (`x.JPEG` and `x copy.JPEG`, or a val image in two class
    folders): the id is each sample's provenance, and which file is the right one is the user's call."""
    for items in listed.values():  # sorted by source id: a repeated id is adjacent
        for a, b in zip(items, items[1:]):
            if a.source_id == b.source_id:
                raise DogbirdError(
                    f"{cfg.source}: {a.where} and {b.where} are both ImageNet image {a.source_id}; "
                    "keep one file per image (remove the copy, or the one in the wrong class "
                    "folder) and re-run"
                )


def scan(ordered: dict[str, list[Item]], cfg: BuildConfig, bar: Callable) -> list[dict[str, str]]:
    """Every unreadable image as {split, file, source_id, reason}, sorted by split and source id."""
    tasks = [
        ((split, items[i : i + SCAN_CHUNK], cfg.size),)
        for split, items in ordered.items()
        for i in range(0, len(items), SCAN_CHUNK)
    ]
    skipped = []
    with bar("checking images", sum(len(t[0][1]) for t in tasks), "img") as progress:
        for split, count, bad in map_unordered(_scan_task, tasks, cfg.workers, cfg.ray):
            skipped += [{"split": split, **entry} for entry in bad]
            progress.update(count)
    return sorted(skipped, key=lambda s: (s["split"], s["source_id"]))


def cached_scan(
    out: Path,
    listed: dict[str, list[Item]],
    ordered: dict[str, list[Item]],
    cfg: BuildConfig,
    bar: Callable,
    files_sha256: str,
) -> tuple[list[dict[str, str]], Path]:
    """scan(), kept in OUT/.work per listing, file sizes and --size (what decides which images fit a JPEG), so a
    resumed or repeated build does not decode every image again; returns the skipped entries and the cache file."""
    ids = {s: [[i.source_id, i.where] for i in items] for s, items in listed.items()}
    listing = json.dumps({"size": cfg.size, **ids}, sort_keys=True)
    listing += files_sha256  # a file replaced at the same name is scanned again
    path = out / SCRATCH_DIR / f"scan-{hashlib.sha256(listing.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        return read_json(path), path
    skipped = scan(ordered, cfg, bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, skipped)
    return skipped, path


def _scan_task(task: tuple[str, list[Item], int]) -> tuple[str, int, list[dict[str, str]]]:
    split, items, size = task
    return split, len(items), scan_chunk(items, size)


def dataset_writer(cfg: BuildConfig, kept: dict[str, list[Item]], files: InputIdentity) -> DatasetWriter:
    """The writer of the JPEG dataset; its config hash covers the ordered ids and the source files' sizes, so a
    resume over a changed source is refused."""
    ids = {
        split: hashlib.sha256("\n".join(i.source_id for i in items).encode()).hexdigest()
        for split, items in kept.items()
    }
    config = {
        "task": "imagenet-dogbird",
        "seed": cfg.seed,
        "image": cfg.image_config(),
        "ids_sha256": ids,
        "source_files": files.to_dict(),
    }
    return DatasetWriter(
        cfg.out_dir,
        config,
        list(CLASS_NAMES),
        {s: len(i) for s, i in kept.items()},
        cfg.samples_per_shard,
        image_ext="jpg",
        card=card_info(cfg),
        overwrite=cfg.overwrite,
        min_shards=cfg.min_shards,
    )


def card_info(cfg: BuildConfig, res: int | None = None) -> CardInfo:
    size = f"shorter side {cfg.size} px" if cfg.size else "original size"
    image = (
        f"{res}x{res} px centre crops (PNG)"
        if res
        else f"JPEG q{cfg.quality}, {size}" + (f", centre crop {cfg.center_crop}" if cfg.center_crop else "")
    )
    return CardInfo(
        pretty_name="ImageNet-DogBird" + (f" {res}px" if res else ""),
        description=(
            "The ImageNet-DogBird task of Deep Bootstrap (Nakkiran, Neyshabur, Sedghi, ICLR 2021): label 0 = the "
            "63 ImageNet classes under WordNet hunting_dog.n.01, label 1 = the 59 under bird.n.01. Train from "
            f"ImageNet train, test from ImageNet val. Images: {image}. Sample json: wnid, imagenet_index, "
            "class_name, source_id (the ImageNet file name without extension)."
        ),
        license="other",
        license_name="imagenet-terms-of-access",
        license_link="https://image-net.org/download",
        annotations_creators=("expert-generated",),
        source_datasets=("imagenet-1k",),
        notes=(
            "ImageNet's terms of access apply (image-net.org/download): research and non-commercial use.",
            "manifest.json lists every source image that could not be used (`skipped`, with the reason).",
        ),
    )


def build_res_copy(parent: DatasetWriter, cfg: BuildConfig, res: int, bar: Callable) -> Path:
    """OUT/res{R}: a complete dataset of R x R centre crops, shard for shard the same samples as OUT."""
    out = Path(cfg.out_dir) / f"res{res}"
    config = {"task": "imagenet-dogbird", "res": res, "parent_config_hash": parent.config_hash}
    writer = DatasetWriter(
        out,
        config,
        list(CLASS_NAMES),
        parent.splits,
        parent.samples_per_shard,
        image_ext="png",
        card=card_info(cfg, res),
        overwrite=cfg.overwrite,
        min_shards=parent.min_shards,
    )
    writer.prepare()
    pending = writer.pending()
    tasks = [(writer, spec, str(parent.out_dir / spec.relpath), res) for spec in pending]
    with bar(f"writing res{res} copy", sum(s.count for s in pending), "img") as progress:
        for stats in map_unordered(res_shard, tasks, cfg.workers, cfg.ray):
            progress.update(stats.samples)
    writer.finalize()
    return out
