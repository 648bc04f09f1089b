"""GPU training throughput of the trainer: ResNet-18 bf16 + channels_last + compile, against the bf16 peak.

    python bench/gpu_train.py                  # all parts, ~3 min on one H200; no downloads
    python bench/gpu_train.py --parts speed,worlds --batch-size 512 --steps 200

Parts (each prints its table as soon as it is done):
  speed      PreAct ResNet-18 (width 64) at --batch-size (512) with the trainer's own step: GPU-resident
             synthetic uint8 pool, Ideal sampler, GPU crop+flip, bf16 autocast, channels_last,
             torch.compile, fused SGD. img/s and the fraction of the bf16 peak (--peak-tflops 790,
             measured on an H200) at 3.33 GFLOP per training image (ResNet-18 CIFAR stem: 0.56 GMAC forward, x3 for
             forward + backward, x2 FLOP per MAC).
  reference  the same compiled model fed by a torchvision-style Dataset of PIL images + transforms +
             DataLoader (--ref-workers 16, pinned memory): img/s and ours / reference (target >= 3x).
  worlds     the paper's batch 128: Real (n = 50K held on the GPU) and Ideal (a 5M pool on the GPU, 15.4 GB,
             and from pinned host memory) steps/s, evaluation img/s, and the projected wall time of a
             39,000-step run with 65 evaluations of 30K images.
  trainer    `run_training` end to end on CUDA (eager, crop-flip, mcnn width 16) on a tiny shards dataset
             written to a temporary folder: a Real and an Ideal run, their T(n), ledger and throughput.
  packed     --pack K ResNet-18 runs (different seeds, Real and Ideal) as one packed model
             (`train.run.packed`) at 128 and 512 images per run and step, for each --compile-modes entry
             ("reduce-overhead" adds CUDA graphs): img/s of all runs together and the fraction of peak,
             against one unpacked run at the same batch (target >= 100K img/s packed).
  fig1       Fig. 1 at full scale with packing: Real (n = 50K) and Ideal as one pack of 2 on a random
             --ideal-pool (5M) pool at batch 128: --fig1-steps timed steps (all 39,000 if asked), the 59
             evaluations of "log:64" timed on the real evaluation code, and the wall time of both worlds'
             39,000 steps (target under 5 GPU-minutes).

    python bench/gpu_train.py --tiny           # every part at toy sizes on the CPU: checks the script
    python bench/gpu_train.py --record results.md   # also append the tables, command and device there
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from bench_train import PILDataset  # the same reference pipeline as the CPU benchmark (bench/ is on sys.path)

from shards.jsonio import write_text_atomic
from train.core.config import RunConfig
from train.core.ddp import Dist
from train.core.samplers import IdealSampler, RealSampler
from train.data.datasets import TrainStore
from train.data.sources import MemorySource, RunData
from train.run.loop import Trainer, run_training
from train.run.packed import PackedTrainer

GFLOP_PER_IMAGE = 3.33
RESULTS: dict[str, dict] = {}
LINES: list[str] = []  # the tables as printed, for --record


def report(line: str) -> None:
    LINES.append(line)
    print(line, flush=True)


def synthetic_pool(count: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device).manual_seed(seed)
    images = torch.empty((count, 32, 32, 3), dtype=torch.uint8, device=device)
    for start in range(0, count, 1 << 20):  # chunks: randint's int64 temporaries stay small
        stop = min(count, start + (1 << 20))
        images[start:stop] = torch.randint(0, 256, (stop - start, 32, 32, 3), device=device, generator=gen)
    labels = torch.randint(0, 10, (count,), device=device, generator=gen)
    return images, labels


def run_data(sampler, images: torch.Tensor, labels: torch.Tensor, cfg: RunConfig, device: torch.device) -> RunData:
    rows = sampler.subset
    if rows is not None:
        picked = torch.from_numpy(rows).to(images.device)
        images, labels = images.index_select(0, picked), labels.index_select(0, picked)
    store = TrainStore(images, labels.to(device), rows, device)
    return RunData(sampler, MemorySource(sampler, store, cfg.batch_size, Dist(), 1024), [], 10, 3, 32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(trainer: Trainer, model: torch.nn.Module, warmup: int, steps: int) -> float:
    """Training img/s of the trainer's own step, after `warmup` steps (compilation, cudnn autotune)."""
    for _ in range(warmup):
        trainer.train_step(model)
    sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(model)
    sync(trainer.device)
    return steps * trainer.cfg.batch_size / (time.perf_counter() - start)


def base_cfg(args, **kw) -> RunConfig:
    values = dict(
        data="synthetic",
        mode="ideal",
        steps=1_000_000,
        batch_size=args.batch_size,
        aug="crop-flip",
        model=args.model,
        width=args.width,
        compile=not args.no_compile,
        device=args.device,
        out_dir=args.tmp,
    )
    return RunConfig(**{**values, **kw})


def part_speed(args, device) -> None:
    cfg = base_cfg(args)
    images, labels = synthetic_pool(args.pool, device)
    trainer = Trainer(
        cfg, Dist(), device, progress=False, data=run_data(IdealSampler(args.pool, 0), images, labels, cfg, device)
    )
    model = trainer.wrapped()
    start = time.perf_counter()
    trainer.train_step(model)
    sync(device)
    compile_s = time.perf_counter() - start
    ips = rate(trainer, model, args.warmup, args.steps)
    tflops = ips * GFLOP_PER_IMAGE / 1e3
    RESULTS["speed"] = dict(
        img_per_s=ips,
        tflops=tflops,
        peak_fraction=tflops / args.peak_tflops,
        first_step_s=compile_s,
        batch_size=cfg.batch_size,
        compile=cfg.compile,
    )
    precision = "bf16" if device.type == "cuda" else "fp32"
    layout = ", channels_last" if device.type == "cuda" else ""
    report(
        f"| {cfg.model} width {cfg.width}, {precision}{layout}{', compile' if cfg.compile else ''}, "
        f"batch {cfg.batch_size} | {ips:,.0f} img/s | {tflops:,.0f} TFLOP/s | {100 * tflops / args.peak_tflops:.1f}% of "
        f"{args.peak_tflops:.0f} | first step (compile) {compile_s:.0f} s |"
    )
    args.trainer = (trainer, model)


def part_reference(args, device) -> None:
    if not getattr(args, "trainer", None):
        part_speed(args, device)
    trainer, model = args.trainer
    rng = np.random.default_rng(0)
    data = PILDataset(
        rng.integers(0, 256, (args.ref_images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, args.ref_images)
    )
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.ref_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.ref_workers > 0,
        prefetch_factor=4 if args.ref_workers else None,
    )

    def batches():
        while True:
            yield from loader

    it = batches()

    def step():
        x, y = next(it)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with trainer.autocast:
            loss = F.cross_entropy(model(x).float(), y)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()

    for _ in range(args.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    steps = max(1, args.ref_steps)
    for _ in range(steps):
        step()
    sync(device)
    ref = steps * args.batch_size / (time.perf_counter() - start)
    ours = RESULTS["speed"]["img_per_s"]
    RESULTS["reference"] = dict(img_per_s=ref, workers=args.ref_workers, ratio=ours / ref)
    report(
        f"| reference: PIL Dataset + transforms + DataLoader({args.ref_workers} workers) | {ref:,.0f} img/s | "
        f"ours / reference {ours / ref:.2f}x (target >= 3x) |"
    )


def part_worlds(args, device) -> None:
    from train.core.metrics import evaluate

    images, labels = synthetic_pool(args.ideal_pool, device, seed=1)
    out = {}
    n = min(50_000, args.ideal_pool // 2)
    worlds: list[tuple[str, RealSampler | IdealSampler, torch.Tensor, torch.Tensor]] = [
        (f"real n={n:,}, GPU", RealSampler(args.ideal_pool, n, 0), images, labels),
        (f"ideal {args.ideal_pool:,} pool, GPU", IdealSampler(args.ideal_pool, 0), images, labels),
    ]
    host = min(args.ideal_pool, args.pinned_pool)
    if device.type == "cuda":
        pinned = images[:host].cpu().pin_memory()
        worlds.append((f"ideal {host:,} pool, pinned host", IdealSampler(host, 0), pinned, labels[:host]))
    for name, sampler, imgs, labs in worlds:
        cfg = base_cfg(args, batch_size=args.world_batch, mode=sampler.kind, n=n)
        trainer = Trainer(cfg, Dist(), device, progress=False, data=run_data(sampler, imgs, labs, cfg, device))
        model = trainer.wrapped()
        out[name] = rate(trainer, model, args.warmup, args.world_steps)
        report(
            f"| {name}, batch {cfg.batch_size} | {out[name]:,.0f} img/s | {out[name] / cfg.batch_size:,.0f} steps/s |"
        )
    evals = images[: args.eval_images]
    warm = min(1024, len(evals))
    evaluate(trainer.model, evals[:warm], labels[:warm], trainer.view, 1024, Dist(), trainer.autocast)
    sync(device)
    start = time.perf_counter()
    evaluate(trainer.model, evals, labels[: len(evals)], trainer.view, 1024, Dist(), trainer.autocast)
    eval_ips = len(evals) / (time.perf_counter() - start)
    for name, ips in out.items():
        hours = (39_000 * args.world_batch / ips + 65 * 30_000 / eval_ips) / 3600
        report(f"| projected 39,000 steps + 65 evaluations, {name} | {hours:.2f} h |")
    RESULTS["worlds"] = dict(train_img_per_s=out, eval_img_per_s=eval_ips)
    report(f"| evaluation (bf16, batch 1024, eager) | {eval_ips:,.0f} img/s |")


def template_dataset(root: Path, train: int, test: int) -> Path:
    """Label-coded 32x32 RGB images (a fixed template per class + noise): a model can fit them."""
    from shards import DatasetWriter

    templates = (np.random.default_rng(7).random((10, 32, 32, 3)) < 0.5).astype(np.int64) * 120
    writer = DatasetWriter(
        root,
        {"bench": "gpu-trainer"},
        [f"c{i}" for i in range(10)],
        {"train": train, "test": test},
        samples_per_shard=1000,
    )
    writer.prepare()
    for spec in writer.pending():
        rng = np.random.default_rng([spec.shard_index, spec.split == "test"])
        labels = rng.integers(0, 10, spec.count)
        noise = rng.integers(0, 136, (spec.count, 32, 32, 3))
        writer.write_shard(
            spec,
            (
                {"image": (templates[y] + z).astype(np.uint8), "cls": int(y), "json": {"i": i}}
                for i, (y, z) in enumerate(zip(labels, noise))
            ),
        )
    writer.finalize()
    return root


def part_trainer(args, device) -> None:
    root = template_dataset(Path(args.tmp) / "templates", args.trainer_images, args.trainer_images // 4)
    # Eager here: the compiled step is what `speed` and `worlds` time; this part checks the run end to end.
    common = dict(
        data=str(root),
        steps=args.trainer_steps,
        batch_size=args.world_batch,
        model="mcnn",
        width=16,
        aug="crop-flip",
        device=args.device,
        eval_schedule="log:16",
        eval_train_samples=1000,
    )
    out = {}
    for mode in ("real", "ideal"):
        cfg = RunConfig(
            mode=mode,
            n=args.trainer_images // 4,
            out_dir=str(Path(args.tmp) / mode),
            **common,
            allow_reuse=mode == "ideal",
        )
        start = time.perf_counter()
        summary = run_training(cfg, progress=False)
        out[mode] = dict(
            wall_s=time.perf_counter() - start,
            fit_step=summary["fit_step"],
            ledger=summary["ledger"],
            img_per_s=summary["img_per_s"],
            final_test_error=summary["final"]["test/error"],
        )
        report(f"| run_training {mode} on {device.type} | {json.dumps(out[mode])} |")
    RESULTS["trainer"] = out


def pack_of(args, device, images, labels, runs: int, batch: int, compile_mode: str | None) -> PackedTrainer:
    """`runs` ResNet-18 runs (seeds 0.., Real n=50K and Ideal in turn) on one pool, packed as one model."""
    lanes = []
    for k in range(runs):
        sampler: RealSampler | IdealSampler
        world: dict[str, Any]
        if k % 2:
            sampler, world = IdealSampler(len(labels), k), dict(mode="ideal", n=None)
        else:
            sampler = RealSampler(len(labels), min(50_000, len(labels) // 2), k)
            world = dict(mode="real", n=sampler.n)
        cfg = base_cfg(args, batch_size=batch, seed=k, compile=False, **world)
        lanes.append(Trainer(cfg, Dist(), device, progress=False, data=run_data(sampler, images, labels, cfg, device)))
    packed = PackedTrainer(lanes, progress=False)
    if compile_mode:  # "reduce-overhead" captures the compiled forward/backward in CUDA graphs
        mode = None if compile_mode == "default" else compile_mode
        packed.wrapped = cast(torch.nn.Module, torch.compile(packed.model, mode=mode))
    return packed


def packed_rate(packed: PackedTrainer, warmup: int, steps: int) -> tuple[float, float]:
    """(img/s of all runs together, seconds of the first step) of the packed trainer's own step."""
    start = time.perf_counter()
    packed.train_step()
    sync(packed.device)
    first_s = time.perf_counter() - start
    for _ in range(warmup):
        packed.train_step()
    sync(packed.device)
    start = time.perf_counter()
    for _ in range(steps):
        packed.train_step()
    sync(packed.device)
    return steps * packed.cfg.batch_size * len(packed.lanes) / (time.perf_counter() - start), first_s


def part_packed(args, device) -> None:
    images, labels = synthetic_pool(args.pool, device)
    modes = [m for m in args.compile_modes.split(",") if m] if not args.no_compile else [""]
    out = {}
    for batch in args.packed_batches:
        cfg = base_cfg(args, batch_size=batch)
        alone = Trainer(
            cfg, Dist(), device, progress=False, data=run_data(IdealSampler(args.pool, 0), images, labels, cfg, device)
        )
        one = rate(alone, alone.wrapped(), args.warmup, args.steps)
        report(
            f"| 1 run, batch {batch}{', compiled' if cfg.compile else ''} | {one:,.0f} img/s | "
            f"{100 * one * GFLOP_PER_IMAGE / 1e3 / args.peak_tflops:.1f}% of peak | 1.00x |"
        )
        del alone
        for mode in modes:
            packed = pack_of(args, device, images, labels, args.pack, batch, mode or None)
            ips, first_s = packed_rate(packed, args.warmup, args.steps)
            tflops = ips * GFLOP_PER_IMAGE / 1e3
            out[f"batch {batch}, {mode or 'eager'}"] = dict(
                img_per_s=ips, peak_fraction=tflops / args.peak_tflops, vs_one_run=ips / one, first_step_s=first_s
            )
            report(
                f"| {args.pack} packed runs, batch {batch} each, {mode or 'eager'} | {ips:,.0f} img/s | "
                f"{100 * tflops / args.peak_tflops:.1f}% of peak | {ips / one:.2f}x (first step {first_s:.0f} s) |"
            )
            del packed
            if device.type == "cuda":
                torch.cuda.empty_cache()
    RESULTS["packed"] = out


def part_fig1(args, device) -> None:
    from train.core.metrics import evaluate
    from train.core.schedule import parse_eval_schedule

    images, labels = synthetic_pool(args.ideal_pool, device, seed=2)
    mode = None if args.no_compile else args.compile_modes.split(",")[0]
    packed = pack_of(args, device, images, labels, 2, args.world_batch, mode)
    ips, first_s = packed_rate(packed, args.warmup, args.fig1_steps)
    step_s = 2 * args.world_batch / ips
    # Each evaluation: the test set and the train-eval set (--eval-images each) of both worlds, on each
    # run's own unpacked model, as `train.run.packed` evaluates.
    packed._sync_lanes()
    evals, eval_labels = images[: args.eval_images], labels[: args.eval_images]
    lane = packed.lanes[0]
    evaluate(lane.model, evals[:256], eval_labels[:256], lane.view, 1024, Dist(), lane.autocast)
    sync(device)
    start = time.perf_counter()
    evaluate(lane.model, evals, eval_labels, lane.view, 1024, Dist(), lane.autocast)
    sync(device)
    eval_s = 2 * 2 * (time.perf_counter() - start)
    count = len(parse_eval_schedule("log:64", 39_000))
    total_s = first_s + 39_000 * step_s + count * eval_s
    RESULTS["fig1"] = dict(
        train_img_per_s=ips,
        batch_size=args.world_batch,
        step_s=step_s,
        timed_steps=args.fig1_steps,
        first_step_s=first_s,
        evaluations=count,
        eval_s_each=eval_s,
        total_s=total_s,
    )
    report(
        f"| Fig. 1 packed: Real n={packed.lanes[0].cfg.n:,} + Ideal, {args.ideal_pool:,} pool, "
        f"batch {args.world_batch} | "
        f"{ips:,.0f} img/s ({args.fig1_steps:,} steps timed) | {count} evaluations x {eval_s:.2f} s | "
        f"39,000 steps of both worlds: {total_s / 60:.1f} min (target < 5) |"
    )


PARTS = {
    "speed": part_speed,
    "reference": part_reference,
    "worlds": part_worlds,
    "trainer": part_trainer,
    "packed": part_packed,
    "fig1": part_fig1,
}
TINY = dict(
    device="cpu",
    no_compile=True,
    batch_size=8,
    steps=2,
    warmup=1,
    pool=600,
    ideal_pool=600,
    pinned_pool=100,
    world_steps=2,
    ref_workers=0,
    ref_images=64,
    ref_steps=2,
    width=2,
    eval_images=64,
    trainer_steps=2,
    trainer_images=200,
    world_batch=8,
    pack=2,
    packed_batches=[4, 8],
    fig1_steps=2,
)


def record(path: str, began: float) -> None:
    """Append this call's tables to a markdown file, with the command and the device."""
    import shlex
    import sys

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    head = (
        f"\n## GPU training figures (`python {shlex.join(sys.argv)}`)\n\n{device}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - began:.0f} s in all\n\n"
    )
    with open(path, "a") as f:
        f.write(head + "\n".join(LINES) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="speed,reference,worlds,trainer,packed,fig1")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--pool", type=int, default=1_000_000, help="synthetic pool of the speed part")
    parser.add_argument("--ideal-pool", type=int, default=5_000_000, help="Ideal pool of the worlds part")
    parser.add_argument("--pinned-pool", type=int, default=1_000_000, help="pool held in pinned host memory")
    parser.add_argument("--world-steps", type=int, default=200)
    parser.add_argument("--world-batch", type=int, default=128, help="the paper's batch: worlds, trainer, fig1")
    parser.add_argument("--ref-workers", type=int, default=16)
    parser.add_argument("--ref-images", type=int, default=50_000)
    parser.add_argument("--ref-steps", type=int, default=40)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 dense peak (H200 measured)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--model", default="preact-resnet18", help="model of speed/reference/worlds")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--eval-images", type=int, default=30_000)
    parser.add_argument("--trainer-steps", type=int, default=300)
    parser.add_argument("--trainer-images", type=int, default=4000, help="train images of the trainer part")
    parser.add_argument("--pack", type=int, default=8, help="runs packed together in the packed part")
    parser.add_argument(
        "--packed-batches",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[128, 512],
        help="per-run batch sizes of the packed part",
    )
    parser.add_argument(
        "--compile-modes",
        default="default",
        help="torch.compile modes of the packed parts, e.g. default,reduce-overhead (CUDA graphs)",
    )
    parser.add_argument("--fig1-steps", type=int, default=2000, help="timed steps of the fig1 part (39000: all)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: checks every part quickly")
    parser.add_argument("--record", help="append the tables, command and device to this markdown file")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--device", default="cuda", help="cpu only to check this script with tiny sizes")
    args = parser.parse_args()
    if args.tiny:
        vars(args).update(TINY)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; this benchmark needs a GPU (bench/bench_train.py runs on CPU)")
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}", flush=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for name in args.parts.split(","):
            try:
                PARTS[name](args, device)
            except Exception:  # report and go on: one failing part must not hide the others' figures
                traceback.print_exc()
                RESULTS[name] = {"error": traceback.format_exc(limit=3)}
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if args.json:  # after every part: a run stopped at its time budget keeps what it measured
                write_text_atomic(args.json, json.dumps(RESULTS, indent=1, default=str))
    print(f"total {time.perf_counter() - began:.0f} s", flush=True)
    if args.record:
        record(args.record, began)


if __name__ == "__main__":
    main()
