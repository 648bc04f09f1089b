"""Training-time JPEG decode throughput (the DogBird data path) on CPU: ours against a per-sample
torchvision pipeline, on the same DogBird-like images (shorter side 256, JPEG quality 95).

    python bench/bench_jpeg_decode.py [--images 512] [--batch-size 64] [--workers 0,2] [--rounds 3]

Ours (what `python -m train run` uses on a variable-size JPEG dataset without a GPU): encoded images held
in memory (`train.data.jpeg.read_encoded`), each batch decoded by `JpegSource` with PIL (JPEG DCT scaling
when it helps, one crop+resize per image), random-resized-crop 224 + flip, in `--workers` DataLoader
processes. Baseline (measured in the same run): the paper code's loader (inftrain/train_imgnet.py):
PIL open + convert("RGB"), then torchvision RandomResizedCrop(224) + RandomHorizontalFlip, per sample,
in the main process; its images/s with N workers would be at most N x this.
Reported: images/s (median of rounds) and the ratio against the baseline.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def dogbird_like_jpegs(n: int, seed: int = 0) -> list[bytes]:
    """Smooth random images, shorter side 256, aspect 3:4 to 4:3, with mild noise, as JPEG quality 95."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        long_side = int(rng.integers(256, 342))
        h, w = (256, long_side) if rng.random() < 0.5 else (long_side, 256)
        low = torch.from_numpy(rng.integers(0, 256, (1, 3, 12, 12)).astype(np.float32))
        smooth = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
        image = np.clip(smooth + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=95)
        out.append(buffer.getvalue())
    return out


def write_dataset(root: Path, jpegs: list[bytes]) -> Path:
    from shards import DatasetWriter

    writer = DatasetWriter(
        root,
        {"bench": "jpeg"},
        ["dog", "bird"],
        {"train": len(jpegs), "test": 2},
        samples_per_shard=128,
        image_ext="jpg",
    )
    writer.prepare()
    for spec in writer.pending():
        jpegs_of = jpegs if spec.split == "train" else jpegs[:2]
        writer.write_shard(
            spec,
            (
                {"image": jpegs_of[i], "cls": i % 2, "json": {"i": i}}
                for i in range(spec.first_index, spec.first_index + spec.count)
            ),
        )
    writer.finalize()
    return root


def baseline_rate(jpegs: list[bytes], batch_size: int, batches: int) -> float:
    from torchvision import transforms

    aug = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()])
    start = time.perf_counter()
    for b in range(batches):
        batch = [
            np.asarray(aug(Image.open(io.BytesIO(jpegs[(b * batch_size + i) % len(jpegs)])).convert("RGB")))
            for i in range(batch_size)
        ]
        np.stack(batch)
    return batches * batch_size / (time.perf_counter() - start)


def ours_rate(root: Path, batch_size: int, batches: int, workers: int) -> float:
    from train.core import ddp
    from train.core.config import RunConfig
    from train.core.samplers import IdealSampler
    from train.data.datasets import open_dataset
    from train.data.jpeg import JpegSource, read_encoded

    ds = open_dataset(str(root))
    pool = ds.split("train").count
    sampler = IdealSampler(pool, seed=0)
    cfg = RunConfig(
        data=str(root),
        mode="ideal",
        steps=batches + 1,
        batch_size=batch_size,
        image_size=224,
        aug="rrc-flip",
        num_workers=workers,
        eval_train_samples=1,
        out_dir="unused",
    )
    source = JpegSource(read_encoded(ds, "train", None), sampler, cfg, ddp.Dist(), torch.device("cpu"), 3)
    source.skip_to(0)
    source.batch(0)  # workers started and warm
    start = time.perf_counter()
    for step in range(1, batches + 1):
        source.batch(step)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    jpegs = dogbird_like_jpegs(args.images)
    print(
        f"{len(jpegs)} images, mean {np.mean([len(j) for j in jpegs]) / 1e3:.1f} KB, batch {args.batch_size}, "
        f"{args.batches} batches per round, {args.rounds} rounds"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "ds", jpegs)
        rates: dict[Any, list[float]] = {"baseline": [], **{w: [] for w in map(int, args.workers.split(","))}}
        for _ in range(args.rounds):  # interleaved rounds: shared-machine load hits every pipeline alike
            rates["baseline"].append(baseline_rate(jpegs, args.batch_size, args.batches))
            for workers in rates:
                if workers != "baseline":
                    rates[workers].append(ours_rate(root, args.batch_size, args.batches, workers))
    base = statistics.median(rates["baseline"])
    print("| pipeline | images/s | ratio |\n|---|---:|---:|")
    print(f"| per-sample PIL + torchvision RandomResizedCrop(224) + flip, 1 process (baseline) | {base:,.0f} | 1.00x |")
    for workers, values in rates.items():
        if workers != "baseline":
            rate = statistics.median(values)
            where = "main process" if workers == 0 else f"{workers} DataLoader workers"
            print(f"| ours: `JpegSource` (PIL, DCT scaling, crop+resize), {where} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
