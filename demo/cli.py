"""The Deep Bootstrap pipeline at miniature scale on scikit-learn's real digits, offline: `python -m demo`.

The command line only (parse, build a config, call a role module):

    python -m demo run                                    # `make demo`: see demo/pipeline.py
    python -m demo train-models --out demo/models         # `make demo-models`: see demo/train_models.py
    python -m demo real-digits --out out/real-digits      # the real split as shards (demo/data.py)
    python -m demo quality --data out/demo/synthetic      # synthetic-vs-real check (demo/quality.py)
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from demo.config import LABELER_PRESET, MODEL_NAMES, DemoConfig, DemoModelsConfig, DiffusionConfig
from demo.data import DEFAULT_SPLIT_SEED, write_real_digits
from demo.errors import DemoError
from demo.quality import DEFAULT_SIZES
from shards import resolve_device
from shards.entry import run_cli
from shards.jsonio import write_json_atomic

log = logging.getLogger(__name__)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise DemoError(f"--sizes={text!r}: must be comma-separated integers >= 1, e.g. 500,1000")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    parser.set_defaults(func=run)
    d_diff = DiffusionConfig()

    tm = sub.add_parser("train-models", help="train and measure the demo's diffusion model and labeler")
    tm.add_argument("--out", required=True, help="folder for digits-ddpm/ and digits-labeler/")
    tm.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED, help="seed of the 70/30 real split")
    tm.add_argument("--seed", type=int, default=0, help="seed of both trainings")
    tm.add_argument("--diffusion-steps", type=int, default=d_diff.steps)
    tm.add_argument("--diffusion-batch-size", type=int, default=d_diff.batch_size)
    tm.add_argument(
        "--labeler-steps",
        type=int,
        default=LABELER_PRESET["steps"],
        help=f"the labeler's trainer steps, batch {LABELER_PRESET['batch_size']} (default {LABELER_PRESET['steps']})",
    )
    tm.add_argument(
        "--only",
        choices=sorted(MODEL_NAMES),
        action="append",
        help="train only this model (repeatable; default both); the other's folder is left as it is",
    )
    tm.add_argument("--quality-samples", type=int, default=1000, help="digits sampled to measure the model")
    tm.add_argument("--quality-steps", type=int, default=20, help="DPM-Solver++ steps for those samples")
    tm.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda, or auto (cuda if present); default cpu, the device the committed models were trained on",
    )
    tm.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: faster than 2 on a shared machine for models this small)",
    )
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
    qu.add_argument(
        "--split-seed", type=int, default=DEFAULT_SPLIT_SEED, help="the real split the demo models were trained with"
    )
    qu.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="training set sizes n")
    qu.add_argument("--out", help="also write the result to this JSON file")

    _add_run_parser(sub)
    return parser


def _add_run_parser(sub) -> None:
    """The `run` subcommand (`make demo`, demo/pipeline.py)."""
    d = DemoConfig()
    run = sub.add_parser(
        "run",
        help="the whole pipeline on the real digits (`make demo`)",
        description="The whole Deep Bootstrap pipeline at miniature scale on scikit-learn's "
        "real digits, offline: real split, synthetic digits, generator quality, Real vs Ideal "
        "bootstrap, report. Resumable: re-run the same command to finish.",
    )
    run.add_argument("--out", default=d.out_dir, help=f"output folder (default {d.out_dir})")
    run.add_argument(
        "--models",
        default=d.models_dir,
        help="folder holding digits-ddpm/ and digits-labeler/ (default: the shipped demo/models)",
    )
    run.add_argument("--split-seed", type=int, default=d.split_seed, help="the real split the models were trained on")
    run.add_argument("--seed", type=int, default=d.seed, help="seed of the generation and of the bootstrap runs")
    g = run.add_argument_group("synthetic digits")
    g.add_argument("--train", type=int, default=d.train, help=f"synthetic train pool (default {d.train:,})")
    g.add_argument("--test", type=int, default=d.test, help=f"synthetic test split (default {d.test:,})")
    g.add_argument("--shard-size", type=int, default=d.samples_per_shard, help="images per shard (resume unit)")
    g.add_argument("--gen-steps", type=int, default=d.gen_steps, help="DPM-Solver++ steps (default 20)")
    g.add_argument("--gen-batch-size", type=int, default=d.gen_batch_size, help="images per UNet batch")
    g.add_argument(
        "--min-confidence",
        type=float,
        default=d.min_confidence,
        help="keep only the digits whose "
        f"labeler top probability is at least this, in train and test (default {d.min_confidence}; 0 "
        "keeps all)",
    )
    b = run.add_argument_group("bootstrap (both worlds share these)")
    b.add_argument("--n", type=int, default=d.n, help=f"Real World train-set size (default {d.n:,})")
    b.add_argument(
        "--steps",
        type=int,
        default=d.steps,
        help=f"SGD steps (default {d.steps}); steps x batch size must be <= --train",
    )
    b.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    b.add_argument("--model", default=d.model, help=f"trainer model (default {d.model})")
    b.add_argument("--width", type=int, default=d.width, help=f"its base width (default {d.width})")
    b.add_argument("--lr", type=float, default=d.lr, help=f"peak lr of the cosine schedule (default {d.lr})")
    b.add_argument(
        "--warmup-steps", type=int, default=d.warmup_steps, help=f"linear lr warm-up (default {d.warmup_steps})"
    )
    b.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD momentum (default {d.momentum})")
    b.add_argument(
        "--seeds",
        type=int,
        default=d.seeds,
        help=f"seeds of each world (default {d.seeds}; the paired test, and so a verdict, needs 2 or more)",
    )
    b.add_argument(
        "--margin",
        default=d.margin,
        help=f"equivalence margin declared before the run: absolute "
        f"(0.01) or a percentage of the generalisation gap's lower 95%% bound (default {d.margin})",
    )
    b.add_argument(
        "--pack",
        type=int,
        default=d.pack,
        help=f"runs trained together as one packed model (default {d.pack}; 1 = one after another)",
    )
    b.add_argument(
        "--eval-schedule",
        default=d.eval_schedule,
        help=f"evaluation steps, as `train run --eval-schedule` (default {d.eval_schedule})",
    )
    run.add_argument("--device", default=d.device, help="auto (cuda if present), cpu or cuda")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace datasets and runs in --out that were made "
        "with other settings (those made with these settings are always reused)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="generation processes on CPU, one torch thread each (default: one per core, at most 8)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help=f"torch threads for the bootstrap (default "
        f"{d.threads}: its small batches do not spread well over threads)",
    )


def _demo_config_from_args(args: argparse.Namespace) -> DemoConfig:
    return DemoConfig(
        out_dir=args.out,
        models_dir=args.models,
        split_seed=args.split_seed,
        seed=args.seed,
        train=args.train,
        test=args.test,
        samples_per_shard=args.shard_size,
        gen_steps=args.gen_steps,
        gen_batch_size=args.gen_batch_size,
        min_confidence=args.min_confidence,
        n=args.n,
        steps=args.steps,
        batch_size=args.batch_size,
        model=args.model,
        width=args.width,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        momentum=args.momentum,
        seeds=args.seeds,
        margin=args.margin,
        pack=args.pack,
        eval_schedule=args.eval_schedule,
        device=args.device,
        overwrite=args.overwrite,
        workers=args.workers,
        threads=args.threads,
    ).validate()


def _config_from_args(args: argparse.Namespace) -> DemoModelsConfig:
    return DemoModelsConfig(
        split_seed=args.split_seed,
        diffusion=DiffusionConfig(steps=args.diffusion_steps, batch_size=args.diffusion_batch_size, seed=args.seed),
        labeler_steps=args.labeler_steps,
        seed=args.seed,
        only=tuple(args.only or MODEL_NAMES),
        quality_samples=args.quality_samples,
        quality_steps=args.quality_steps,
        device=str(resolve_device(args.device, DemoError)),
        threads=args.threads,
    )


def run(args: argparse.Namespace) -> None:
    if args.command == "train-models":
        cfg = _config_from_args(args)
        cfg.validate()
        log.info("config: %s", json.dumps(asdict(cfg)))
        if not args.dry_run:
            from demo.train_models import train_models  # torch, diffusers: not loaded for --help

            train_models(args.out, cfg, overwrite=args.overwrite)
            log.info("wrote %s", ", ".join(str(Path(args.out) / MODEL_NAMES[name]) for name in cfg.only))
    elif args.command == "real-digits":
        manifest = write_real_digits(args.out, args.split_seed, args.samples_per_shard, args.overwrite)
        counts = {name: split.count for name, split in manifest.splits.items()}
        log.info("wrote %s: %s", args.out, counts)
    elif args.command == "quality":
        from demo.quality import generator_quality  # deferred with its training loop's imports

        result = generator_quality(args.data, args.split, args.split_seed, _sizes(args.sizes))
        print(json.dumps(result, indent=2))
        if args.out:
            write_json_atomic(Path(args.out), result)
    elif args.command == "run":
        from demo.pipeline import run_demo  # torch, diffusers, timm: not loaded for --help

        run_demo(_demo_config_from_args(args))


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        build_parser(),
        argv,
        interrupted_hint="interrupted: finished shards and runs are kept; re-run the same command to resume",
    )
