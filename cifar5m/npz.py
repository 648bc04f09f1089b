"""The released CIFAR-5m `part{0..5}.npz` files in and out of our format.

    python -m cifar5m import-npz part0.npz part1.npz ... part5.npz --out out/cifar5m-released
    python -m cifar5m export-npz out/cifar5m-released --out parts/

Each released part holds `X` uint8 (N, 32, 32, 3) and `Y` integer labels in CIFAR-10 order, N = 1,000,448
(github.com/preetum/cifar5m). The paper's code trains on parts 0-4 and tests on the first 10,000 images of
part 5; so here every file but the last is train, and the test split is the first `--test-rows` rows of the
last file (`--full-test`: all of it). `json` holds the provenance (`part`: position of the file in the
command, `row`: row within it), `cls` the label.

A part is ~3 GB and `np.load(...)["X"]` reads it whole (numpy has no chunked reader for a `.npy` inside a
zip, and `mmap_mode` is ignored for `.npz`), so X's rows are read in chunks: straight from the file at the
member's offset when it is stored uncompressed (as the release is), which gives every shard random access
and lets worker processes write shards in parallel; otherwise out of the decompressing zip stream. Y is
small (8 MB) and read whole up front, so the label range is checked before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import struct
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO

import numpy as np

from cifar5m.config import CIFAR10_CLASSES
from cifar5m.errors import Cifar5mError
from shards import CardInfo, DatasetWriter, iter_samples, load_manifest
from shards.cliargs import add_out, add_overwrite, add_samples_per_shard, add_workers
from shards.entry import add_min_shards_flag
from shards.errors import ShardsError
from shards.identity import file_record, identity_of
from shards.importer import SAMPLES_PER_SHARD
from shards.jsonio import atomic_target
from shards.manifest import MIN_SHARDS

IMAGE_SHAPE = (32, 32, 3)
PART_ROWS = 1_000_448  # rows in each released part (github.com/preetum/cifar5m README)
PAPER_TEST_ROWS = 10_000  # the paper's code tests on the first 10,000 rows of part 5
CHUNK_ROWS = 4096  # 12.6 MB of X per read: the memory bound, and big enough that reads stay sequential
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: exported parts are byte-identical across runs


@dataclass(frozen=True)
class NpzPart:
    """One checked part: its path, its labels (read whole) and where X's rows start: `x_header_bytes` into
    the zip member, and `x_offset` into the file itself when the member is stored uncompressed (np.savez,
    the release), which lets any shard's rows be read directly."""

    path: Path
    labels: np.ndarray
    x_header_bytes: int
    x_offset: int | None

    @property
    def rows(self) -> int:
        return len(self.labels)


def _npy_header(stream, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return read_header(stream)  # shape, fortran_order, dtype
    except ValueError as exc:
        raise Cifar5mError(f"{where}: not a .npy array ({exc}); is this a released CIFAR-5m part?") from exc


def open_part(path: str | os.PathLike, num_classes: int = len(CIFAR10_CLASSES)) -> NpzPart:
    """Check a part's arrays (names, shapes, dtypes, label range) and read its labels; X is not read."""
    path = Path(path)
    if not path.is_file():
        raise Cifar5mError(f"{path}: no such file; give the released part0.npz ... part5.npz")
    if not zipfile.is_zipfile(path):
        raise Cifar5mError(f"{path}: not an .npz (zip) file; give the released part0.npz ... part5.npz")
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        if not {"X.npy", "Y.npy"} <= set(names):
            raise Cifar5mError(
                f"{path}: holds arrays {', '.join(n.removesuffix('.npy') for n in names) or 'none'}; "
                "a CIFAR-5m part holds X (images) and Y (labels)"
            )
        with zf.open("X.npy") as f:
            shape, fortran, dtype = _npy_header(f, f"{path}:X")
            header = f.tell()
        x_info = zf.getinfo("X.npy")
        with zf.open("Y.npy") as f:
            y_shape, _, y_dtype = _npy_header(f, f"{path}:Y")
            if len(y_shape) != 1 or y_dtype.kind not in "iu":
                raise Cifar5mError(f"{path}: Y is {y_dtype} {y_shape}; must be integer labels of shape (N,)")
            f.seek(0)
            try:
                labels = np.lib.format.read_array(f, allow_pickle=False)
            except ValueError as exc:  # numpy: "EOF: reading array data, expected N bytes got M"
                raise Cifar5mError(
                    f"{path}: Y's header says {y_shape[0]:,} labels but the file holds fewer ({exc}); "
                    "the file is damaged: download it again"
                ) from exc
    if dtype != np.uint8 or fortran or tuple(shape[1:]) != IMAGE_SHAPE:
        raise Cifar5mError(
            f"{path}: X is {dtype} {shape}{' (Fortran order)' if fortran else ''}; must be "
            f"uint8 (N, {', '.join(map(str, IMAGE_SHAPE))}) in C order"
        )
    if shape[0] != len(labels):
        raise Cifar5mError(f"{path}: X has {shape[0]:,} rows but Y has {len(labels):,}; the file is damaged")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise Cifar5mError(
            f"{path}: Y[{bad[0]}] = {labels[bad[0]]}, labels must be in [0, {num_classes}) "
            f"({len(bad):,} rows are not); is this a CIFAR-5m part?"
        )
    offset = _member_data_offset(path, x_info) + header if x_info.compress_type == zipfile.ZIP_STORED else None
    return NpzPart(path, labels, header, offset)


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a member's bytes start in the file: after its local header (30 bytes + name + extra field;
    the extra field may differ from the central directory's, so it is read here)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len


def iter_rows(part: NpzPart, start: int, stop: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """X[start:stop] of a part, in chunks of at most `chunk_rows` images: read straight from the file when X
    is stored uncompressed, else decompressed from the zip member (slower: skipping rows means reading them)."""
    row_bytes = int(np.prod(IMAGE_SHAPE))
    with ExitStack() as stack:
        if part.x_offset is not None:
            f: IO[bytes] = stack.enter_context(open(part.path, "rb"))
            f.seek(part.x_offset + start * row_bytes)
        else:
            f = stack.enter_context(stack.enter_context(zipfile.ZipFile(part.path)).open("X.npy"))
            f.seek(part.x_header_bytes + start * row_bytes)
        for first in range(start, stop, chunk_rows):
            count = min(chunk_rows, stop - first)
            data = f.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise Cifar5mError(
                    f"{part.path}: X ends at row {first + len(data) // row_bytes:,}, header says "
                    f"{part.rows:,}; the file is truncated, download it again"
                )
            yield np.frombuffer(data, np.uint8).reshape(count, *IMAGE_SHAPE)


def split_layout(parts: list[NpzPart], test_rows: int | None) -> dict[str, list[tuple[int, int, int]]]:
    """split -> segments (part position, start row, stop row): all but the last part train, the last test."""
    if len(parts) < 2:
        raise Cifar5mError(
            f"got {len(parts)} part file: give at least two (every part but the last is train, "
            "the last one is the test part), e.g. part0.npz ... part5.npz"
        )
    if test_rows is not None and test_rows < 0:
        raise Cifar5mError(f"--test-rows={test_rows}: must be >= 0 (or use --full-test)")
    last = parts[-1]
    stop = last.rows if test_rows is None else min(test_rows, last.rows)
    return {"train": [(k, 0, p.rows) for k, p in enumerate(parts[:-1])], "test": [(len(parts) - 1, 0, stop)]}


def shard_pieces(segments, first: int, count: int) -> list[tuple[int, int, int]]:
    """The (part, start, stop) row ranges holding split indices [first, first + count)."""
    pieces, offset = [], 0
    for k, start, stop in segments:
        lo, hi = max(first, offset), min(first + count, offset + stop - start)
        if lo < hi:
            pieces.append((k, start + lo - offset, start + hi - offset))
        offset += stop - start
    return pieces


def shard_samples(parts: list[NpzPart], segments, spec) -> Iterator[dict]:
    """The sample dicts of one shard: image, label as `cls`, provenance (part, row) as `json`."""
    for k, start, stop in shard_pieces(segments, spec.first_index, spec.count):
        row = start
        for chunk in iter_rows(parts[k], start, stop):
            for image in chunk:
                yield {"image": image, "cls": int(parts[k].labels[row]), "json": {"part": k, "row": row}}
                row += 1


def _write_shard(writer: DatasetWriter, paths: tuple[str, ...], test_rows: int | None, spec) -> int:
    # Each task opens the parts itself (Y is 8 MB, ~10 ms to read and check per part against seconds of
    # PNG encoding per shard): nothing big is pickled to worker processes and no state is kept between tasks.
    parts = [open_part(p) for p in paths]
    writer.write_shard(spec, shard_samples(parts, split_layout(parts, test_rows)[spec.split], spec))
    return spec.count


def parts_identity(parts: list[NpzPart]) -> dict:
    """The parts by content (size and sha256 of each, ~3 GB read once per run), in command order (`[k] NAME`):
    a resume over a re-downloaded or replaced part is refused rather than mixing two parts' rows."""
    try:
        records = [file_record(p.path.resolve().parent, p.path.resolve().name) for p in parts]
    except ShardsError as exc:
        raise Cifar5mError(str(exc)) from None
    ordered = [dataclasses.replace(r, path=f"[{k}] {r.path}") for k, r in enumerate(records)]
    return identity_of("parts", ordered).to_dict()


def import_npz(
    paths: list[str],
    out_dir: str,
    test_rows: int | None = PAPER_TEST_ROWS,
    samples_per_shard: int = SAMPLES_PER_SHARD,
    overwrite: bool = False,
    workers: int = 1,
    progress=None,
    min_shards: int = MIN_SHARDS,
):
    """Write the parts into a dataset of ours (resumable; shards written by `workers` processes, the same
    bytes for any count); return the manifest."""
    parts = [open_part(p) for p in paths]
    counts = {
        split: sum(stop - start for _, start, stop in segs) for split, segs in split_layout(parts, test_rows).items()
    }
    config = {
        "kind": "cifar5m-npz",
        "test_rows": test_rows,
        "y_dtype": str(parts[0].labels.dtype),
        "parts": [{"file": p.path.name, "rows": p.rows} for p in parts],
        "part_files": parts_identity(parts),
    }
    card = CardInfo(
        pretty_name="CIFAR-5m (released npz)",
        source_datasets=("cifar5m",),
        description="The released CIFAR-5m (Nakkiran et al., ICLR 2021; github.com/preetum/cifar5m): "
        "DDPM samples labelled by a fine-tuned BiT-M-R152x2. `json.part`/`json.row` give "
        "each image's place in the part files.",
        tags=("deep-bootstrap", "webdataset", "synthetic"),
    )
    writer = DatasetWriter(
        out_dir,
        config,
        list(CIFAR10_CLASSES),
        counts,
        samples_per_shard,
        card=card,
        min_shards=min_shards,
        overwrite=overwrite,
    )
    writer.prepare()
    task = functools.partial(_write_shard, writer, tuple(str(p) for p in paths), test_rows)
    with ExitStack() as stack:
        pool = stack.enter_context(ProcessPoolExecutor(workers)) if workers > 1 else None
        for done in pool.map(task, writer.pending()) if pool else map(task, writer.pending()):
            if progress:
                progress.update(done)
    return writer.finalize()


def export_layout(manifest, part_rows: int | None) -> list[tuple[str, int]]:
    """(split, rows) of every part to write, in order: train cut into parts, then the test split."""
    config = manifest.config
    if part_rows is None and config.get("kind") == "cifar5m-npz":
        train_rows = [p["rows"] for p in config["parts"][:-1]]
    else:
        size = part_rows or PART_ROWS
        total = manifest.splits["train"].count
        train_rows = [min(size, total - first) for first in range(0, total, size)]
    layout = [("train", rows) for rows in train_rows]
    if "test" in manifest.splits:
        layout.append(("test", manifest.splits["test"].count))
    return layout


def write_npz_part(path: Path, images: Iterator[np.ndarray], labels: np.ndarray, y_dtype: str) -> None:
    """Write part `path` (X streamed row by row, Y whole) through a temporary file, then rename it."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (len(labels), *IMAGE_SHAPE),
    }
    with atomic_target(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open(zipfile.ZipInfo("X.npy", ZIP_TIME), "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, header)
                written = sum(f.write(np.ascontiguousarray(image).tobytes()) for image in images)
            if written != len(labels) * int(np.prod(IMAGE_SHAPE)):
                raise Cifar5mError(f"{path}: wrote {written:,} bytes of X for {len(labels):,} rows; dataset changed?")
            with zf.open(zipfile.ZipInfo("Y.npy", ZIP_TIME), "w") as f:
                np.lib.format.write_array(f, labels.astype(y_dtype), allow_pickle=False)


def export_npz(
    dataset: str, out_dir: str, part_rows: int | None = None, overwrite: bool = False, progress=None
) -> list[Path]:
    """Write a dataset of ours as CIFAR-5m parts `part{k}.npz` in `out_dir`; return their paths."""
    if part_rows is not None and part_rows < 1:
        raise Cifar5mError(f"--part-rows={part_rows}: must be >= 1")
    root = Path(dataset)
    manifest = load_manifest(root)
    if manifest.image_shape != list(IMAGE_SHAPE):
        raise Cifar5mError(f"{dataset}: images are {manifest.image_shape}, CIFAR-5m parts hold 32x32x3")
    if "train" not in manifest.splits:  # the parts' layout: train parts, then the test split in the last
        raise Cifar5mError(
            f"{dataset}: no train split (splits: {', '.join(manifest.splits)}); CIFAR-5m parts "
            "hold the train split, then the test split in the last part"
        )
    layout = export_layout(manifest, part_rows)
    out = Path(out_dir)
    paths = [out / f"part{k}.npz" for k in range(len(layout))]
    existing = [p.name for p in paths if p.exists()]
    if existing and not overwrite:
        raise Cifar5mError(f"{out}: {', '.join(existing)} already exist; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    y_dtype = manifest.config.get("y_dtype", "int64")
    streams = {s: iter_samples(root / f for f in info.shard_files()) for s, info in manifest.splits.items()}
    for path, (split, rows) in zip(paths, layout):
        labels = np.empty(rows, np.int64)
        write_npz_part(path, _take_images(streams[split], rows, labels, progress), labels, y_dtype)
    return paths


def _take_images(samples, rows: int, labels: np.ndarray, progress) -> Iterator[np.ndarray]:
    """The next `rows` images of a split, filling `labels` as they pass (Y is written after X)."""
    for i, (_, image, cls, _) in enumerate(islice(samples, rows)):
        labels[i] = cls
        if progress:
            progress.update(1)
        yield image


def _cmd_import(args) -> int:
    from tqdm import tqdm

    parts = [open_part(p) for p in args.parts]  # checked before the bar: a bad file fails at once
    test_rows = None if args.full_test else args.test_rows
    total = sum(stop - start for segs in split_layout(parts, test_rows).values() for _, start, stop in segs)
    if args.workers < 1:
        raise Cifar5mError(f"--workers={args.workers}: must be >= 1")
    with tqdm(total=total, unit="img", desc="import-npz", dynamic_ncols=True) as bar:
        manifest = import_npz(
            args.parts,
            args.out,
            test_rows,
            args.samples_per_shard,
            overwrite=args.overwrite,
            workers=args.workers,
            progress=bar,
            min_shards=args.min_shards,
        )
    print(
        f"complete: {args.out}/manifest.json, "
        + ", ".join(f"{s} {i.count:,}" for s, i in manifest.splits.items())
        + f"; check it with `python -m shards verify {args.out}`"
    )
    return 0


def _cmd_export(args) -> int:
    from tqdm import tqdm

    manifest = load_manifest(args.dataset)
    with tqdm(
        total=sum(i.count for i in manifest.splits.values()), unit="img", desc="export-npz", dynamic_ncols=True
    ) as bar:
        paths = export_npz(args.dataset, args.out, args.part_rows, overwrite=args.overwrite, progress=bar)
    print(f"wrote {len(paths)} parts: " + ", ".join(str(p) for p in paths))
    return 0


def register(sub) -> None:
    """Add `import-npz` and `export-npz` to the `python -m cifar5m` subcommands."""
    p = sub.add_parser(
        "import-npz",
        help="the released CIFAR-5m part{0..5}.npz -> our shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("parts", nargs="+", help="part files in order: every one but the last is train, the last is test")
    add_out(p, "output dataset folder (created; resumed if it holds this import)")
    p.add_argument(
        "--test-rows",
        type=int,
        default=PAPER_TEST_ROWS,
        help=f"test = the first N rows of the last part (default {PAPER_TEST_ROWS:,}, as in the paper)",
    )
    p.add_argument("--full-test", action="store_true", help="test = all of the last part")
    add_samples_per_shard(p, SAMPLES_PER_SHARD)
    add_min_shards_flag(p)
    add_workers(
        p,
        min(8, os.cpu_count() or 1),
        "processes writing shards (PNG encoding is the cost; min(8, CPUs)); same bytes for any count",
    )
    add_overwrite(p, "a dataset of another config in --out")
    p.set_defaults(func=_cmd_import)
    p = sub.add_parser("export-npz", help="a dataset of ours -> CIFAR-5m-style part{k}.npz files")
    p.add_argument("dataset", help="dataset folder with 32x32x3 images")
    add_out(p, "folder for part0.npz, part1.npz, ...")
    p.add_argument(
        "--part-rows",
        type=int,
        help=f"train rows per part (default: the imported parts' sizes, else "
        f"{PART_ROWS:,}); the test split is the last part",
    )
    add_overwrite(p, "existing part files in --out")
    p.set_defaults(func=_cmd_export)
