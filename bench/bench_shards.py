"""Shard write/read throughput against webdataset, per process, on 32x32 RGB images.

    python bench/bench_shards.py [--samples 20000] [--shard-size 10000]

Baselines, measured in the same run on the same samples:
  write: webdataset.ShardWriter with defaults (its PNG encoder, PAX headers)
  read:  webdataset.WebDataset(urls, shardshuffle=False).decode("rgb8")
Ours: shards.DatasetWriter; shards.StreamingBatches (in-process, batches of 256); the decoded cache
(shards.load_split, random-order batches of 256 from the memory-mapped array).
Targets: write >= 1x, bytes <= 0.8x, streaming read >= 2x (aim 3x), cache read >= 100x.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)


def cifar_like_images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random images with mild noise: compress like natural 32x32 images, unlike pure noise."""
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.integers(0, 256, (n, 3, 6, 6)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(low, size=32, mode="bicubic", align_corners=False)
    noisy = smooth.permute(0, 2, 3, 1).numpy() + rng.normal(0, 6, (n, 32, 32, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def samples(images, labels, start, count):
    for i in range(start, start + count):
        yield {"image": images[i], "cls": int(labels[i]), "json": {"index": i, "max_prob": 0.5}}


def write_ours(root: Path, images, labels, shard_size) -> float:
    from shards import DatasetWriter

    writer = DatasetWriter(root, {"bench": 1}, [str(c) for c in range(10)], {"train": len(images)}, shard_size)
    writer.prepare()
    start = time.perf_counter()
    for spec in writer.pending():
        writer.write_shard(spec, samples(images, labels, spec.first_index, spec.count))
    writer.finalize()
    return time.perf_counter() - start


def write_wds(root: Path, images, labels, shard_size) -> float:
    import webdataset as wds

    root.mkdir(parents=True)
    start = time.perf_counter()
    with wds.ShardWriter(str(root / "train-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
        for i in range(len(images)):
            sink.write(
                {"__key__": f"{i:09d}", "png": images[i], "cls": int(labels[i]), "json": {"index": i, "max_prob": 0.5}}
            )
    return time.perf_counter() - start


def read_wds(urls) -> tuple[float, int]:
    import webdataset as wds

    start, n = time.perf_counter(), 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8"):
        n += sample["png"].shape[0] > 0
    return time.perf_counter() - start, n


def read_stream(urls) -> tuple[float, int]:
    from shards import StreamingBatches

    start, n = time.perf_counter(), 0
    for batch in StreamingBatches(urls, batch_size=256, seed=0):
        n += len(batch["cls"])
    return time.perf_counter() - start, n


def read_cache(root: Path) -> tuple[float, float, int]:
    from shards import load_split

    start = time.perf_counter()
    arrays = load_split(root, "train", num_workers=1, progress=False)
    build = time.perf_counter() - start
    order = np.random.default_rng(0).permutation(len(arrays.labels))
    start, n = time.perf_counter(), 0
    for lo in range(0, len(order), 256):
        idx = np.sort(order[lo : lo + 256])
        batch = torch.from_numpy(arrays.images[idx])
        n += batch.shape[0] + 0 * int(arrays.labels[idx][0])
    return build, time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    args = parser.parse_args()
    images = cifar_like_images(args.samples)
    labels = np.random.default_rng(1).integers(0, 10, args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        ours, base = Path(tmp) / "ours", Path(tmp) / "wds"
        t_ours, t_wds = (
            write_ours(ours, images, labels, args.shard_size),
            write_wds(base, images, labels, args.shard_size),
        )
        bytes_ours = sum(p.stat().st_size for p in (ours / "data").glob("*.tar"))
        bytes_wds = sum(p.stat().st_size for p in base.glob("*.tar"))
        urls_ours = sorted(str(p) for p in (ours / "data").glob("*.tar"))
        urls_wds = sorted(str(p) for p in base.glob("*.tar"))
        (r_wds, n1), (r_ours, n2) = read_wds(urls_wds), read_stream(urls_ours)
        build, r_cache, n3 = read_cache(ours)
        assert n1 == n2 == n3 == args.samples
    n = args.samples
    rows = [
        ("write  webdataset.ShardWriter (baseline)", n / t_wds, 1.0),
        ("write  shards.DatasetWriter", n / t_ours, t_wds / t_ours),
        ("read   webdataset .decode('rgb8') (baseline)", n / r_wds, 1.0),
        ("read   shards.StreamingBatches", n / r_ours, r_wds / r_ours),
        ("read   decoded cache (random batches)", n / r_cache, r_wds / r_cache),
        ("build  decoded cache (1 process)", n / build, r_wds / build),
    ]
    print(f"{n:,} samples of 32x32x3, shards of {args.shard_size:,}, one process")
    for name, rate, ratio in rows:
        print(f"  {name:<46} {rate:>12,.0f} samples/s   {ratio:7.2f}x")
    print(
        f"  bytes on disk: ours {bytes_ours / n:,.0f} B/sample, webdataset {bytes_wds / n:,.0f} B/sample, "
        f"ratio {bytes_ours / bytes_wds:.2f}x"
    )


if __name__ == "__main__":
    main()
