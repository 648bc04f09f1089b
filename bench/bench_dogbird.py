"""DogBird build throughput per process against a plain PIL loop doing the same image work; 2-process scaling.

    python bench/bench_dogbird.py [--images 400] [--width 500 --height 375]

Source: a fake ImageNet folder of smooth-plus-noise JPEGs (q90) of ImageNet's typical 500x375 size in
four DogBird classes. Baseline, measured in the same run on the same files: a plain PIL loop
(read file -> open -> convert RGB -> resize shorter side 256 bilinear -> JPEG q95 into memory), the
decode + resize + encode a build must do at least. Ours: dogbird.images.to_jpeg alone (adds EXIF and
alpha handling), the scan (images.check_image), and the whole `python -m dogbird build` (list, scan,
build, tar, sha256, manifest) with --workers 1 and 2. Target: build >= 0.8x the PIL loop per process.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dogbird.cli import main  # noqa: E402
from dogbird.images import check_image, to_jpeg  # noqa: E402

CLASSES = ["n02088094", "n02099601", "n01514859", "n01530575"]  # 2 hunting dogs, 2 birds


def make_source(root: Path, n: int, width: int, height: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        low = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
        pixels = np.asarray(low, dtype=np.float32) + rng.normal(0, 12, (height, width, 3))
        path = root / "train" / CLASSES[i % 4] / f"{CLASSES[i % 4]}_{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        files.append(path)
    for k, wnid in enumerate(CLASSES):  # a small val split: the build needs one
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        (root / "val" / wnid / f"ILSVRC2012_val_{k + 1:08d}.JPEG").write_bytes(files[k].read_bytes())
    return files


def pil_loop(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        image = Image.open(io.BytesIO(path.read_bytes())).convert("RGB")
        w, h = image.size
        scale = 256 / min(w, h)
        image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
        image.save(io.BytesIO(), format="JPEG", quality=95)
    return len(files) / (time.perf_counter() - start)


def loop_of(fn, files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        fn(path.read_bytes())
    return len(files) / (time.perf_counter() - start)


def build(source: Path, out: Path, workers: int, n: int) -> float:
    start = time.perf_counter()
    rc = main(
        [
            "build",
            "--imagenet",
            str(source),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--samples-per-shard",
            "50",
            "--allow-missing-classes",
            "--log-level",
            "WARNING",
        ]
    )
    assert rc == 0
    return (n + len(CLASSES)) / (time.perf_counter() - start)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        files = make_source(Path(tmp) / "src", args.images, args.width, args.height)
        baseline = pil_loop(files)
        rows = [
            ("plain PIL loop (baseline)", baseline),
            ("dogbird.images.to_jpeg", loop_of(lambda d: to_jpeg(d, 256, 95, 0), files)),
            ("scan (check_image, 1/8-scale decode)", loop_of(check_image, files)),
            ("python -m dogbird build, 1 process", build(Path(tmp) / "src", Path(tmp) / "o1", 1, args.images)),
            ("python -m dogbird build, 2 processes", build(Path(tmp) / "src", Path(tmp) / "o2", 2, args.images)),
        ]
    print(f"{args.images} images of {args.width}x{args.height}, cpu count {os.cpu_count()}")
    print(f"| {'stage':40} | img/s | vs PIL loop |\n|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name:40} | {rate:7.1f} | {rate / baseline:5.2f}x |")
    print(f"2-process scaling of the build: {rows[4][1] / rows[3][1]:.2f}x")


if __name__ == "__main__":
    main_bench()
