"""The demo's models and data on scikit-learn's real handwritten digits (`make demo-models`).

    python -m cifar5m.demo train-models --out cifar5m/demo_models   # a few minutes on 2 CPU cores
    python -m cifar5m.demo real-digits --out out/real-digits        # the real split as shards
    python -m cifar5m.demo quality --data out/demo/synthetic        # synthetic-vs-real check
    python -m cifar5m.demo run                                      # `make demo`: see cifar5m/demo_run.py

`train-models` trains, on the real train split (70%, seeded), a diffusion model saved as a diffusers
DDPMPipeline folder (`digits-ddpm/`) and a labeler saved in timm's format (`digits-labeler/`, loaded
with `local-dir:`), then measures both from the saved folders: the labeler's accuracy on the real
holdout; for the diffusion model, digits sampled with DPM-Solver++ (20 steps) and labelled by that
labeler (mean confidence, class balance) and the synthetic-vs-real classifier check. Each folder gets
`training.json` (config, split, versions, wall time) and `metrics.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cifar5m.demo_data import CLASS_NAMES, DEFAULT_SPLIT_SEED, DigitsSplit, load_digits_split, write_real_digits
from cifar5m.demo_diffusion import DiffusionConfig, load_pipeline, sample_digits, save_pipeline, train_diffusion
from cifar5m.demo_labeler import LabelerConfig, load_labeler, predict_proba, save_labeler, train_labeler
from cifar5m.demo_quality import DEFAULT_SIZES, generator_quality, label_stats, synthetic_vs_real
from cifar5m.errors import Cifar5mError
from shards.entry import run_cli

log = logging.getLogger(__name__)

DDPM_DIR = "digits-ddpm"
LABELER_DIR = "digits-labeler"


@dataclass(frozen=True)
class DemoModelsConfig:
    """Everything that decides the demo's models and how they are measured."""

    split_seed: int = DEFAULT_SPLIT_SEED
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    labeler: LabelerConfig = field(default_factory=LabelerConfig)
    quality_samples: int = 1000
    quality_steps: int = 20
    quality_seed: int = 0
    device: str = "cpu"
    # One thread: these models are so small that on a shared 2-core machine OpenMP threads stall waiting
    # for each other (measured with another job running: 0.5 s/step with 1 thread, 6-8 s/step with 2).
    threads: int = 1

    def validate(self) -> None:
        checks = [("--diffusion-steps", self.diffusion.steps), ("--diffusion-batch-size", self.diffusion.batch_size),
                  ("--labeler-epochs", self.labeler.epochs), ("--quality-samples", self.quality_samples),
                  ("--quality-steps", self.quality_steps), ("--threads", self.threads)]
        for flag, value in checks:
            if value < 1:
                raise Cifar5mError(f"{flag}={value}: must be >= 1")


def _versions() -> dict:
    import diffusers
    import sklearn
    import timm
    import torch

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "timm": timm.__version__,
            "scikit-learn": sklearn.__version__}


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _fresh_dir(out_dir: Path, name: str, overwrite: bool) -> Path:
    """A temporary sibling of `out_dir/name`, renamed into place when complete (no half-written model)."""
    final = out_dir / name
    if final.exists() and not overwrite:
        raise Cifar5mError(f"{final}: already exists; pass --overwrite to retrain and replace it")
    tmp = out_dir / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit_dir(tmp: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _train_labeler_folder(split: DigitsSplit, cfg: DemoModelsConfig, out_dir: Path, overwrite: bool) -> dict:
    tmp = _fresh_dir(out_dir, LABELER_DIR, overwrite)
    start = time.perf_counter()
    model = train_labeler(split.train_images, split.train_labels, cfg.labeler, device=cfg.device)
    wall_s = time.perf_counter() - start
    save_labeler(model.cpu(), tmp, CLASS_NAMES)
    model, data_config = load_labeler(tmp)  # measure what was saved, through timm's own loader
    probs = predict_proba(model, split.holdout_images, data_config)
    metrics = {
        "holdout_accuracy": float((probs.argmax(axis=1) == split.holdout_labels).mean()),
        "train_accuracy": float((predict_proba(model, split.train_images, data_config).argmax(axis=1)
                                 == split.train_labels).mean()),
        "holdout": label_stats(probs),
    }
    _write_json(tmp / "metrics.json", metrics)
    _write_json(tmp / "training.json", {"config": asdict(cfg.labeler), "device": cfg.device, "threads": cfg.threads,
                                        "data": split.describe(), "versions": _versions(),
                                        "wall_s": round(wall_s, 1)})
    _commit_dir(tmp, out_dir / LABELER_DIR)
    log.info("labeler: holdout accuracy %.4f (%d digits), trained in %.0f s",
             metrics["holdout_accuracy"], len(probs), wall_s)
    return metrics


def _train_ddpm_folder(split: DigitsSplit, cfg: DemoModelsConfig, out_dir: Path, overwrite: bool) -> dict:
    tmp = _fresh_dir(out_dir, DDPM_DIR, overwrite)
    start = time.perf_counter()
    unet, scheduler = train_diffusion(split.train_images, cfg.diffusion, device=cfg.device)
    wall_s = time.perf_counter() - start
    save_pipeline(unet.cpu(), scheduler, tmp)
    metrics = measure_generator(tmp, out_dir / LABELER_DIR, split, cfg)
    _write_json(tmp / "metrics.json", metrics)
    _write_json(tmp / "training.json", {"config": asdict(cfg.diffusion), "device": cfg.device, "threads": cfg.threads,
                                        "parameters": sum(p.numel() for p in unet.parameters()),
                                        "data": split.describe(), "versions": _versions(),
                                        "wall_s": round(wall_s, 1)})
    _commit_dir(tmp, out_dir / DDPM_DIR)
    return metrics


def measure_generator(ddpm_dir: Path, labeler_dir: Path, split: DigitsSplit, cfg: DemoModelsConfig) -> dict:
    """Sample digits from a saved pipeline folder, label them with the saved labeler, and compare a
    classifier trained on them with one trained on real digits (both tested on the real holdout)."""
    unet, scheduler = load_pipeline(ddpm_dir)
    start = time.perf_counter()
    images = sample_digits(unet.to(cfg.device), scheduler, cfg.quality_samples, steps=cfg.quality_steps,
                           seed=cfg.quality_seed)
    sample_s = time.perf_counter() - start
    labeler, data_config = load_labeler(labeler_dir)
    probs = predict_proba(labeler, images, data_config)
    sizes = tuple(n for n in DEFAULT_SIZES if n <= cfg.quality_samples) or (cfg.quality_samples,)
    check = synthetic_vs_real(images, probs.argmax(axis=1), split, sizes=sizes, seed=cfg.quality_seed)
    stats = label_stats(probs)
    log.info("diffusion: %d samples in %.0f s; labeler mean confidence %.3f, class counts %s",
             len(images), sample_s, stats["mean_confidence"], stats["class_counts"])
    for row in check["rows"]:
        log.info("  n=%d: trained on synthetic %.4f vs on real %.4f (real holdout accuracy)",
                 row["n"], row["synthetic_to_real_accuracy"], row["real_to_real_accuracy"])
    return {"sampler": f"DPMSolverMultistepScheduler, {cfg.quality_steps} steps, seed {cfg.quality_seed}",
            "samples_per_s": round(len(images) / sample_s, 1), "labels": stats, "synthetic_vs_real": check}


def train_models(out_dir: str | Path, cfg: DemoModelsConfig, overwrite: bool = False) -> dict:
    """Train and measure both demo models into `out_dir`/{digits-labeler, digits-ddpm}."""
    import torch

    cfg.validate()
    out_dir = Path(out_dir)
    for name in (LABELER_DIR, DDPM_DIR):
        if (out_dir / name).exists() and not overwrite:
            raise Cifar5mError(f"{out_dir / name}: already exists; pass --overwrite to retrain and replace it")
    split = load_digits_split(cfg.split_seed)
    log.info("real digits: %d train, %d holdout (split seed %d)",
             len(split.train_labels), len(split.holdout_labels), split.seed)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        labeler = _train_labeler_folder(split, cfg, out_dir, overwrite)
        ddpm = _train_ddpm_folder(split, cfg, out_dir, overwrite)
    finally:
        torch.set_num_threads(threads_before)
    return {LABELER_DIR: labeler, DDPM_DIR: ddpm}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise Cifar5mError(f"--sizes={text!r}: must be comma-separated integers >= 1, e.g. 500,1000")
    return sizes


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise Cifar5mError(f"--device={name}: no CUDA device is visible; use --device cpu")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cifar5m.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    parser.set_defaults(func=run)
    d_diff, d_lab = DiffusionConfig(), LabelerConfig()

    tm = sub.add_parser("train-models", help="train and measure the demo's diffusion model and labeler")
    tm.add_argument("--out", required=True, help="folder for digits-ddpm/ and digits-labeler/")
    tm.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED, help="seed of the 70/30 real split")
    tm.add_argument("--seed", type=int, default=0, help="seed of both trainings")
    tm.add_argument("--diffusion-steps", type=int, default=d_diff.steps)
    tm.add_argument("--diffusion-batch-size", type=int, default=d_diff.batch_size)
    tm.add_argument("--labeler-epochs", type=int, default=d_lab.epochs)
    tm.add_argument("--quality-samples", type=int, default=1000, help="digits sampled to measure the model")
    tm.add_argument("--quality-steps", type=int, default=20, help="DPM-Solver++ steps for those samples")
    tm.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda if present); default cpu, "
                                                    "the device the committed models were trained on")
    tm.add_argument("--threads", type=int, default=1,
                    help="CPU threads (default 1: faster than 2 on a shared machine for models this small)")
    tm.add_argument("--overwrite", action="store_true", help="replace existing model folders")
    tm.add_argument("--dry-run", action="store_true", help="print the config and stop")

    rd = sub.add_parser("real-digits", help="write the real train/holdout split as a shards dataset")
    rd.add_argument("--out", required=True, help="dataset folder (splits: train, test = holdout)")
    rd.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    rd.add_argument("--samples-per-shard", type=int, default=500)
    rd.add_argument("--overwrite", action="store_true", help="replace a dataset built with another config")

    qu = sub.add_parser("quality", help="synthetic-vs-real check of a generated digits dataset")
    qu.add_argument("--data", required=True, help="generated shards dataset (folder or URL)")
    qu.add_argument("--split", default="train", help="its split to train the classifier on")
    qu.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED,
                    help="the real split the demo models were trained with")
    qu.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="training set sizes n")
    qu.add_argument("--out", help="also write the result to this JSON file")

    _add_run_parser(sub)
    return parser


def _add_run_parser(sub) -> None:
    """The `run` subcommand (`make demo`, cifar5m/demo_run.py)."""
    from cifar5m.demo_run import DemoConfig

    d = DemoConfig()
    run = sub.add_parser("run", help="the whole pipeline on the real digits (`make demo`)",
                         description="The whole Deep Bootstrap pipeline at miniature scale on scikit-learn's "
                         "real digits, offline: real split, synthetic digits, generator quality, Real vs Ideal "
                         "bootstrap, report. Resumable: re-run the same command to finish.")
    run.add_argument("--out", default=d.out_dir, help=f"output folder (default {d.out_dir})")
    run.add_argument("--models", default=d.models_dir, help="folder holding digits-ddpm/ and digits-labeler/ "
                     "(default: the shipped cifar5m/demo_models)")
    run.add_argument("--split-seed", type=int, default=d.split_seed, help="the real split the models were trained on")
    run.add_argument("--seed", type=int, default=d.seed, help="seed of the generation and of the bootstrap runs")
    g = run.add_argument_group("synthetic digits")
    g.add_argument("--train", type=int, default=d.train, help=f"synthetic train pool (default {d.train:,})")
    g.add_argument("--test", type=int, default=d.test, help=f"synthetic test split (default {d.test:,})")
    g.add_argument("--shard-size", type=int, default=d.samples_per_shard, help="images per shard (resume unit)")
    g.add_argument("--gen-steps", type=int, default=d.gen_steps, help="DPM-Solver++ steps (default 20)")
    g.add_argument("--gen-batch-size", type=int, default=d.gen_batch_size, help="images per UNet batch")
    b = run.add_argument_group("bootstrap (both worlds share these)")
    b.add_argument("--n", type=int, default=d.n, help=f"Real World train-set size (default {d.n:,})")
    b.add_argument("--steps", type=int, default=d.steps, help=f"SGD steps (default {d.steps}); "
                   "steps x batch size must be <= --train")
    b.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    b.add_argument("--model", default=d.model, help=f"trainer model (default {d.model})")
    b.add_argument("--width", type=int, default=d.width, help=f"its base width (default {d.width})")
    b.add_argument("--lr", type=float, default=d.lr, help=f"peak lr of the cosine schedule (default {d.lr})")
    b.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD momentum (default {d.momentum})")
    b.add_argument("--eval-points", type=int, default=d.eval_points, help="log-spaced evaluation steps")
    run.add_argument("--device", default=d.device, help="auto (cuda if present), cpu or cuda")
    run.add_argument("--overwrite", action="store_true", help="replace datasets and runs in --out that were made "
                     "with other settings (those made with these settings are always reused)")
    run.add_argument("--workers", type=int, default=None, help="generation processes on CPU, one torch thread "
                     "each (default: one per core, at most 8)")
    run.add_argument("--threads", type=int, default=d.threads, help=f"torch threads for the bootstrap (default "
                     f"{d.threads}: its small batches do not spread well over threads)")


def _demo_config_from_args(args: argparse.Namespace):
    from cifar5m.demo_run import DemoConfig

    return DemoConfig(
        out_dir=args.out, models_dir=args.models, split_seed=args.split_seed, seed=args.seed, train=args.train,
        test=args.test, samples_per_shard=args.shard_size, gen_steps=args.gen_steps,
        gen_batch_size=args.gen_batch_size, n=args.n, steps=args.steps, batch_size=args.batch_size,
        model=args.model, width=args.width, lr=args.lr, momentum=args.momentum, eval_points=args.eval_points,
        device=args.device, overwrite=args.overwrite, workers=args.workers, threads=args.threads,
    ).validate()


def _config_from_args(args: argparse.Namespace) -> DemoModelsConfig:
    return DemoModelsConfig(
        split_seed=args.split_seed,
        diffusion=DiffusionConfig(steps=args.diffusion_steps, batch_size=args.diffusion_batch_size, seed=args.seed),
        labeler=LabelerConfig(epochs=args.labeler_epochs, seed=args.seed),
        quality_samples=args.quality_samples, quality_steps=args.quality_steps, device=resolve_device(args.device),
        threads=args.threads,
    )


def run(args: argparse.Namespace) -> None:
    if args.command == "train-models":
        cfg = _config_from_args(args)
        cfg.validate()
        log.info("config: %s", json.dumps(asdict(cfg)))
        if not args.dry_run:
            train_models(args.out, cfg, overwrite=args.overwrite)
            log.info("wrote %s and %s", Path(args.out) / LABELER_DIR, Path(args.out) / DDPM_DIR)
    elif args.command == "real-digits":
        manifest = write_real_digits(args.out, args.split_seed, args.samples_per_shard, args.overwrite)
        counts = {name: split.count for name, split in manifest.splits.items()}
        log.info("wrote %s: %s", args.out, counts)
    elif args.command == "quality":
        result = generator_quality(args.data, args.split, args.split_seed, _sizes(args.sizes))
        print(json.dumps(result, indent=2))
        if args.out:
            _write_json(Path(args.out), result)
    elif args.command == "run":
        from cifar5m.demo_run import run_demo

        run_demo(_demo_config_from_args(args))


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv, interrupted_hint="interrupted: finished shards and runs are kept; "
                   "re-run the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
