"""`python -m dogbird build`: the command line. Parse -> config -> validate -> print -> run -> summary.

python -m dogbird build --imagenet /data/imagenet --out out/dogbird
python -m dogbird build --imagenet hf://datasets/ILSVRC/imagenet-1k --out out/dogbird --workers 8 --res 64
python -m dogbird build --imagenet 'https://host/imagenet1k-{train-{0000..1023},validation-{00..63}}.tar' ...
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager

from tqdm import tqdm

from dogbird import build_dataset
from dogbird.config import BuildConfig
from dogbird.sources import LAYOUTS
from shards.cliargs import (
    add_log_level,
    add_out,
    add_overwrite,
    add_ray,
    add_samples_per_shard,
    add_workers,
    root_parser,
)
from shards.entry import add_min_shards_flag, run_cli
from shards.runtime import start_ray

DESCRIPTION = "ImageNet's hunting dogs vs birds (the paper's DogBird task) as verified shards."

log = logging.getLogger("dogbird")

BUILD_DESCRIPTION = f"""\
Build the paper's ImageNet-DogBird task as WebDataset shards: label 0 = the 63 ImageNet classes under
WordNet hunting_dog.n.01, label 1 = the 59 under bird.n.01; train from ImageNet train (~155K images),
test from ImageNet val (6,100). Other classes never enter (Chihuahua, German shepherd and Shetland
sheepdog are dogs but not hunting dogs).

--imagenet: {LAYOUTS}. Gated Hub repos need HF_TOKEN.
Images are re-encoded as RGB JPEGs (EXIF orientation applied; 16-bit greyscale scaled to 8 bits);
unreadable files, and those whose resized longer side would pass JPEG's 65,500 px limit, are skipped and
listed in manifest.json; two files with one ImageNet id are refused. The same source and seed give
byte-identical shards whatever the layout; re-run the same command to resume after an interruption.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = root_parser("dogbird", DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build",
        help="ImageNet -> hunting dogs vs birds -> shards",
        description=BUILD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--imagenet", required=True, help="the ImageNet source: folder, hf://datasets/ORG/NAME or URL")
    add_out(b, "output dataset folder (created; resumed if it holds this build)")
    b.add_argument("--seed", type=int, default=BuildConfig.seed, help="shuffle seed (default %(default)s)")
    b.add_argument(
        "--size",
        type=int,
        default=BuildConfig.size,
        help="shorter side in pixels (default %(default)s, as the paper's copies; 0 keeps the size)",
    )
    b.add_argument("--quality", type=int, default=BuildConfig.quality, help="JPEG quality (default %(default)s)")
    b.add_argument(
        "--center-crop",
        type=int,
        default=BuildConfig.center_crop,
        help="centre crop to C x C after resizing (default: none)",
    )
    add_samples_per_shard(b, BuildConfig.samples_per_shard)
    add_min_shards_flag(b)
    b.add_argument(
        "--res",
        type=int,
        action="append",
        default=[],
        help="also write OUT/resR: R x R centre crops as PNG, for fast training (repeatable)",
    )
    add_workers(b, BuildConfig.workers, "local worker processes")
    add_ray(b)  # every node needs this package, the source and --out at the same paths
    b.add_argument(
        "--allow-missing-classes", action="store_true", help="build even when the source lacks some of the 122 classes"
    )
    add_overwrite(b, "a dataset built with other settings")
    b.add_argument("--dry-run", action="store_true", help="print the resolved settings and stop")
    add_log_level(b, subcommand=True)
    b.set_defaults(func=build)
    return parser


@contextmanager
def tqdm_bar(desc: str, total: int, unit: str):
    with tqdm(total=total or None, desc=desc, unit=unit, dynamic_ncols=True, disable=None) as bar:
        yield bar


def build(args: argparse.Namespace) -> int:
    cfg = BuildConfig(
        source=args.imagenet,
        out_dir=args.out,
        seed=args.seed,
        size=args.size,
        quality=args.quality,
        center_crop=args.center_crop,
        samples_per_shard=args.samples_per_shard,
        min_shards=args.min_shards,
        res=tuple(args.res),
        workers=args.workers,
        ray=args.ray is not None,
        allow_missing_classes=args.allow_missing_classes,
        overwrite=args.overwrite,
    ).validate()
    log.info("settings: %s", json.dumps(cfg.to_dict(), sort_keys=True))
    if args.dry_run:
        return 0
    if args.ray is not None:
        start_ray(args.ray)  # join ADDRESS now: the runner's tasks find the cluster already joined
    result = build_dataset(cfg, bar=tqdm_bar)
    for split, info in result.manifest.splits.items():
        dogs, birds = info.label_histogram
        log.info(
            "%s: %d images (%d hunting dogs, %d birds) in %d shards", split, info.count, dogs, birds, len(info.shards)
        )
    for entry in result.skipped[:10]:
        log.warning("skipped %s: %s", entry["file"], entry["reason"])
    log.info(
        "wrote %d images to %s; skipped %d unreadable or unusable (listed in manifest.json)%s",
        result.written,
        cfg.out_dir,
        len(result.skipped),
        "".join(f"; fixed-size copy in {d}" for d in result.res_dirs),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
