"""`python -m shards {verify,info,fetch,publish,import}`: check, describe, download, publish and import datasets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shards.card import License
from shards.cliargs import add_out, add_overwrite, add_samples_per_shard, root_parser
from shards.entry import add_license_flags, add_min_shards_flag, run_cli
from shards.errors import ShardsError
from shards.importer import SAMPLES_PER_SHARD, import_dataset, open_source
from shards.manifest import load_manifest
from shards.remote import (
    PublishCheck,
    hub_dataset_url,
    loading_snippets,
    publish,
    publish_checks,
    resolve_dataset,
    upload_plan,
)
from shards.verify import verify_dataset

DESCRIPTION = "Check, describe, download, publish and import datasets in the toolkit's shard format."


def cmd_verify(args: argparse.Namespace) -> int:
    report = verify_dataset(args.dir, decode=not args.no_decode, progress=True)
    for problem in report.problems:
        print(f"FAIL {problem}")
    status = "OK" if report.ok else f"FAILED ({report.problem_count:,} problems)"
    print(f"{status}: {report.root}: {report.shards_checked} shards, {report.samples_checked:,} samples checked")
    return 0 if report.ok else 1


def cmd_info(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    m = load_manifest(root)
    size = sum(p.stat().st_size for p in (root / "data").glob("*.tar"))
    info = {
        "dataset": str(root),
        "classes": m.class_names,
        "image": {"format": m.image_ext, "shape": m.image_shape},
        "splits": {
            s: {"samples": i.count, "shards": len(i.shards), "label_histogram": i.label_histogram}
            for s, i in m.splits.items()
        },
        "bytes_on_disk": size,
        "config_hash": m.config_hash,
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{root}: {size / 1e6:,.1f} MB on disk, {m.image_ext} images of shape {m.image_shape}")
    for split, s in m.splits.items():
        print(f"  {split}: {s.count:,} samples in {len(s.shards)} shards")
        for name, count in zip(m.class_names, s.label_histogram):
            print(f"    {name:>16}: {count:,}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    print(resolve_dataset(args.url, rehash=True))
    return 0


def dry_run_publish(root: Path, args: argparse.Namespace) -> int:
    """Run every check of a publish, print each with the upload plan and the card; 1 if one would fail."""
    checks: list[PublishCheck] = []
    try:
        checks.extend(publish_checks(root, args.repo, args.revision, args.overwrite))
    except ShardsError as exc:  # only the last check, the repo's state, reads the network
        checks.append(PublishCheck("repo", False, f"cannot read the repo: {exc}"))
    print(f"dry run: publishing {root} to {hub_dataset_url(args.repo, args.revision)}; checks:")
    for check in checks:
        print(f"  {'ok' if check.ok else 'FAIL':<4}  {check.name}: {check.detail}")
    plan = upload_plan(root)
    print(f"would upload {len(plan)} files in this order (shards first; card and manifest last, in the final commit):")
    for number, name in enumerate(plan, start=1):
        print(f"  {number:>4}. {name}")
    card = root / "README.md"
    print(f"\n--- {card} (the dataset card) ---")
    print(card.read_text() if card.is_file() else "(none: the dataset has no README.md)")
    failed = [c.name for c in checks if not c.ok]
    print(
        f"dry run: publishing would fail ({', '.join(failed)}); nothing uploaded"
        if failed
        else "dry run: every check passes; nothing uploaded"
    )
    return 1 if failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    splits = list(load_manifest(root).splits)
    split = "train" if "train" in splits else splits[0]
    if args.dry_run:
        return dry_run_publish(root, args)
    url = publish(root, args.repo, private=args.private, revision=args.revision, force=args.overwrite)
    print(f"published: {url}")
    print("load it with:")
    for line in loading_snippets(args.repo, split, args.revision):
        print(f"  {line}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    license = License(args.license, args.license_name, args.license_link)
    src = open_source(args.source, args.image_column, args.label_column, args.splits, args.class_names, args.channels)
    print(
        f"{args.source}: image column {src.image_column!r}, label column {src.label_column!r}, "
        f"{len(src.class_names)} classes; " + ", ".join(f"{s} {n:,}" for s, n in src.counts.items())
    )
    with tqdm(total=sum(src.counts.values()), unit="img", desc="import", dynamic_ncols=True) as bar:
        manifest = import_dataset(
            src,
            args.out,
            args.samples_per_shard,
            args.image_ext,
            args.overwrite,
            bar,
            license=license,
            min_shards=args.min_shards,
        )
    print(
        f"complete: {args.out}/manifest.json, "
        + ", ".join(f"{s} {i.count:,}" for s, i in manifest.splits.items())
        + f"; check it with `python -m shards verify {args.out}`"
    )
    return 0


def _class_names(text: str) -> list[str]:
    """`a,b,c`, or `@FILE` with one name per line (names may then hold commas)."""
    if not text.startswith("@"):
        return _csv(text)
    try:
        lines = Path(text[1:]).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShardsError(
            f"--class-names {text}: cannot read the names file ({exc}); give a UTF-8 text file, one class name per line"
        ) from exc
    return [line.strip() for line in lines if line.strip()]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = root_parser("shards", DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="re-hash, count and decode every shard against the manifest")
    p.add_argument("dir", help="dataset folder, http(s):// URL or hf://datasets/ORG/NAME[@REV]")
    p.add_argument("--no-decode", action="store_true", help="check sizes and hashes only (fast)")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("info", help="counts, classes, label histogram and size on disk")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser(
        "fetch",
        help="download a dataset URL (http(s)://, hf://datasets/...) into the cache; "
        "shards cached already are re-hashed and downloaded again when they differ",
    )
    p.add_argument("url")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("publish", help="verify, then upload a dataset to a Hugging Face Hub dataset repo")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--repo", required=True, help="Hub dataset repo id, e.g. me/cifar5m")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="branch to push to (default: main)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run the publish's checks (offline mode, token, verify, "
        "the repo's state), print them, the upload plan and the card; upload nothing; exit 1 if one fails",
    )
    add_overwrite(p, "a repo that holds another dataset of ours")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser(
        "import", help="a labelled image dataset (Hub id, parquet folder, SPLIT/CLASS/ image folder) -> our shards"
    )
    p.add_argument("source", help="Hub dataset id (ORG/NAME, streamed), a parquet folder, or an image folder")
    add_out(p, "output dataset folder (created; resumed if it holds this import)")
    p.add_argument("--image-column", help="image column (default: the one Image feature)")
    p.add_argument("--label-column", help="label column (default: the one ClassLabel feature)")
    p.add_argument("--splits", type=_csv, help="comma-separated splits to import (default: all)")
    p.add_argument(
        "--class-names",
        type=_class_names,
        metavar="A,B,... | @FILE",
        help="class names in label order, for an integer label column (e.g. WebDataset `cls`); "
        "@FILE reads one name per line",
    )
    p.add_argument(
        "--channels",
        default="auto",
        choices=["auto", "1", "3"],
        help="stored channels: auto keeps a grey source grey (from its first image) (default auto)",
    )
    add_samples_per_shard(p, SAMPLES_PER_SHARD)
    p.add_argument("--image-ext", default="png", choices=["png", "jpg"], help="stored image format (default png)")
    add_min_shards_flag(p)
    add_overwrite(p, "a dataset of another config in --out")
    add_license_flags(p)
    p.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)
