"""Training throughput on CPU: the trainer's fast path against a torchvision-style pipeline, same model and batch.

    python bench/bench_train.py [--samples 5000] [--batch-size 128] [--models preact-resnet18:64,mcnn:16]
                                [--steps 3] [--ref-workers 0] [--threads 1]

Ours (the code `python -m train run` uses): a `shards` dataset -> decoded uint8 cache -> TrainStore ->
Real sampler -> batched crop(pad 4)+flip -> normalise, no per-sample Python.
Reference (baseline, measured in the same run on the same images): a torchvision-style `Dataset` holding
PIL images with transforms.Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(),
Normalize(0.5, 0.5)]) in a shuffling `DataLoader`.
Reported per pipeline: the data path alone (augmented, normalised batches per second; median of interleaved
rounds) and end to end (data + forward + backward + SGD step) for each model; and the ratios ours / reference.
Targets (CPU): data path >= 20x; end to end >= 1.1x (compute dominates on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def cifar_like_images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random 32x32 RGB images with mild noise (PNG-compress like natural ones)."""
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.integers(0, 256, (n, 3, 6, 6)).astype(np.float32))
    smooth = F.interpolate(low, size=32, mode="bicubic", align_corners=False)
    noisy = smooth.permute(0, 2, 3, 1).numpy() + rng.normal(0, 6, (n, 32, 32, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_dataset(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    from shards import DatasetWriter

    writer = DatasetWriter(
        root,
        {"bench": "train"},
        [str(c) for c in range(10)],
        {"train": len(images), "test": 10},
        samples_per_shard=2500,
    )
    writer.prepare()
    for spec in writer.pending():
        src = images if spec.split == "train" else images[:10]
        writer.write_shard(
            spec,
            (
                {"image": src[i], "cls": int(labels[i]), "json": {"i": i}}
                for i in range(spec.first_index, spec.first_index + spec.count)
            ),
        )
    writer.finalize()
    return root


class Ours:
    """The trainer's fast path, from its own modules."""

    def __init__(self, root: Path, batch_size: int):
        import shards
        from train.core.augment import TrainAugment
        from train.core.ddp import Dist
        from train.core.samplers import Ledger, RealSampler
        from train.data.datasets import TrainStore
        from train.data.sources import MemorySource

        arrays = shards.load_split(root, "train", progress=False)
        sampler = RealSampler(len(arrays.labels), len(arrays.labels), seed=0)
        store = TrainStore.build(arrays.images, arrays.labels, torch.device("cpu"), rows=sampler.subset)
        self.source = MemorySource(sampler, store, batch_size, Dist(), eval_count=1)
        self.ledger = Ledger(len(arrays.labels))
        self.augment = TrainAugment("crop-flip", 4, 32)
        self.generator = torch.Generator()
        self.step = 0

    def batches(self):
        while True:
            images, labels, idx = self.source.batch(self.step)
            self.ledger.record(idx)
            self.generator.manual_seed(self.step)
            self.step += 1
            yield self.augment(images, self.generator), labels


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        from PIL import Image
        from torchvision import transforms

        self.images = [Image.fromarray(a) for a in images]
        self.labels = labels
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.labels[i])


def reference_batches(images, labels, batch_size: int, workers: int):
    loader = torch.utils.data.DataLoader(
        PILDataset(images, labels),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    while True:
        yield from loader


def data_rates(pipelines: list, counts: list[int], rounds: int) -> list[float]:
    """Median img/s of each batch iterator over `rounds` interleaved rounds (the machine is shared:
    interleaving exposes every pipeline to the same background load)."""
    for batches in pipelines:
        next(batches)  # start-up (workers, first epoch) is not throughput
    rates: list[list[float]] = [[] for _ in pipelines]
    for _ in range(rounds):
        for batches, count, out in zip(pipelines, counts, rates):
            start = time.perf_counter()
            n = sum(len(next(batches)[1]) for _ in range(count))
            out.append(n / (time.perf_counter() - start))
    return [float(np.median(r)) for r in rates]


def train_rates(pipelines: list, make_model, steps: int) -> list[float]:
    """End-to-end img/s of each pipeline training its own copy of one model, steps interleaved so that
    both see the same background load; one warm-up step each."""
    runs = []
    for batches in pipelines:
        model = make_model()
        model.train()
        runs.append((batches, model, torch.optim.SGD(model.parameters(), lr=0.01)))

    def one_step(batches, model, optimizer) -> int:
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(y)

    for run in runs:
        one_step(*run)
    seconds, images = [0.0] * len(runs), [0] * len(runs)
    for _ in range(steps):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            images[i] += one_step(*run)
            seconds[i] += time.perf_counter() - start
    return [n / s for n, s in zip(images, seconds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--models", default="preact-resnet18:64,mcnn:16", help="NAME:WIDTH,... to train")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model and pipeline")
    parser.add_argument("--data-batches", type=int, default=10, help="timed reference batches per round (ours: 20x)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds of the data paths")
    parser.add_argument("--ref-workers", type=int, default=0, help="DataLoader workers of the reference")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from train.core.config import RunConfig
    from train.core.models import build_model

    images = cifar_like_images(args.samples)
    labels = np.random.default_rng(1).integers(0, 10, args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "ds", images, labels)
        ours = Ours(root, args.batch_size)
        ref = reference_batches(images, labels, args.batch_size, args.ref_workers)
        ours_data, ref_data = data_rates(
            [ours.batches(), ref], [20 * args.data_batches, args.data_batches], args.rounds
        )
        print(
            f"{args.samples:,} 32x32 RGB images, batch {args.batch_size}, {args.threads} torch thread(s), "
            f"reference with {args.ref_workers} DataLoader workers"
        )
        print("| pipeline | ours img/s | reference img/s | ratio | target |\n|---|---:|---:|---:|---|")
        print(
            f"| data path (crop+flip, normalise) | {ours_data:,.0f} | {ref_data:,.0f} | "
            f"{ours_data / ref_data:.1f}x | >= 20x |"
        )
        for spec in args.models.split(","):
            name, width = spec.split(":")

            def make_model(name=name, width=int(width)) -> torch.nn.Module:
                torch.manual_seed(0)
                return build_model(RunConfig(model=name, width=width), 10, 3, 32)

            ours_e2e, ref_e2e = train_rates([ours.batches(), ref], make_model, args.steps)
            print(
                f"| end to end, {name} width {width} | {ours_e2e:,.0f} | {ref_e2e:,.0f} | "
                f"{ours_e2e / ref_e2e:.2f}x | >= 1.1x |"
            )


if __name__ == "__main__":
    main()
