"""`python -m cifar5m {generate,convert-ddpm,import-npz,export-npz,report}`: the command line.

generate: parse -> config -> validate -> print -> run -> summary. The other commands live in their own
modules (convert_ddpm.py, npz.py, report.py), each adding its subparser with `register(sub)`.

    python -m cifar5m generate --labeler local-dir:/models/cifar10-labeler --out out/cifar5m
    python -m cifar5m generate --labeler hf-hub:ORG/NAME --sampler dpmpp --train 50000 --test 10000 --out out/small
    python -m cifar5m generate ... --shards 0:100     # one Slurm array task; a final run without --shards
    python -m cifar5m generate ... --workers 2        # two local processes (CPU cores, or cuda:0 and cuda:1)
    python -m cifar5m generate ... --ray              # all GPUs of a Ray cluster
"""

from __future__ import annotations

import argparse
import json

from cifar5m import convert_ddpm, npz, report
from cifar5m.config import (
    COMPILE_MODES,
    DEFAULT_MODEL,
    DTYPES,
    PRESETS,
    GenerateConfig,
    parse_class_names,
    parse_shard_range,
)
from shards.card import License
from shards.cliargs import add_device, add_out, add_overwrite, add_ray, add_samples_per_shard, add_workers, root_parser
from shards.entry import add_license_flags, add_min_shards_flag, run_cli

DESCRIPTION = "CIFAR-5m-like data: diffusion samples, labelled by a classifier, written as verified shards."

GENERATE_DESCRIPTION = f"""\
Make a CIFAR-5m-like dataset: unconditional samples of a pretrained diffusion model, each labelled
by a classifier, written as WebDataset shards. Resumable: re-run the same command to finish or repair.

--model: a Hub id or a local diffusers pipeline folder (model_index.json, unet/, scheduler/).
  The default, {DEFAULT_MODEL}, holds the NON-EMA DDPM weights (FID ~12.4 at 1000 steps
  against ~3.2 for the EMA weights): a pipeline folder converted from the EMA checkpoint is
  accepted and recommended. The image shape comes from the UNet (in_channels, sample_size).
--sampler:
{chr(10).join(f"  {name:6} {p.about}" for name, p in PRESETS.items())}
  Each image's noise follows from (--seed, split, index) alone: the same image comes out whatever
  the shard range, worker count, Ray or local, or resume (byte for byte, for the same settings). Another
  --batch-size gives the same images up to float rounding (fp32: within 1 level; bf16 differs more),
  so it is part of the dataset's config and a resume must use the same one.
--labeler: a timm classifier with one output per class: hf-hub:ORG/NAME, local-dir:/path (a folder
  saved by timm), or a timm name with --labeler-checkpoint FILE. It sees each image as stored
  (uint8), resized to its own input size with its own mean/std. Class names: --class-names, else
  the labeler's label_names, else CIFAR-10's.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = root_parser("cifar5m", DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "generate",
        help="diffusion samples -> labels -> shards",
        description=GENERATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_out(g, "output dataset folder (created; resumed if it holds this run)")
    g.add_argument("--labeler", help="timm labeler: hf-hub:ORG/NAME, local-dir:/path, or a timm name")
    g.add_argument("--labeler-checkpoint", help="weights file for a plain timm --labeler name")
    g.add_argument(
        "--class-names",
        type=parse_class_names,
        help="comma-separated class names in label order (default: labeler's, else CIFAR-10's)",
    )
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="Hub id or pipeline folder (default %(default)s, the non-EMA weights; an EMA pipeline folder is accepted)",
    )
    g.add_argument(
        "--sampler", default=GenerateConfig.sampler, choices=list(PRESETS), help="sampler preset (default %(default)s)"
    )
    g.add_argument(
        "--steps", type=int, help="sampling steps (default: ddpm all the model's training steps, ddim 100, dpmpp 20)"
    )
    g.add_argument("--train", type=int, default=GenerateConfig.train, help="train images (default %(default)s)")
    g.add_argument("--test", type=int, default=GenerateConfig.test, help="test images (default %(default)s)")
    add_samples_per_shard(g, GenerateConfig.samples_per_shard)
    add_min_shards_flag(g)
    add_license_flags(g)
    g.add_argument("--seed", type=int, default=GenerateConfig.seed, help="global seed (default %(default)s)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=GenerateConfig.batch_size,
        help="images per UNet batch (default %(default)s; part of the config: float rounding depends on it)",
    )
    add_device(g, GenerateConfig.device)
    g.add_argument(
        "--dtype",
        default=GenerateConfig.dtype,
        choices=DTYPES,
        help="UNet/labeler autocast dtype (auto: bf16 on CUDA, fp32 on CPU); scheduler math stays fp32",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the UNet (GPU; first batch is slow)")
    g.add_argument(
        "--compile-mode",
        default=GenerateConfig.compile_mode,
        metavar="MODE",
        help=f"torch.compile mode, implies --compile: {', '.join(COMPILE_MODES)} (reduce-overhead: "
        "CUDA graphs; default: default)",
    )
    g.add_argument(
        "--shards",
        type=parse_shard_range,
        dest="shard_range",
        metavar="A:B",
        help="only shard positions A..B-1 (train shards first), e.g. for a Slurm job array",
    )
    add_ray(g)
    add_workers(
        g,
        GenerateConfig.workers,
        "local worker processes: on the CPU one torch thread each, with CUDA "
        "worker i on cuda:i; same bytes as one process",
    )
    g.add_argument(
        "--labeler-eval",
        metavar="DATASET",
        help="measure the labeler on this real labelled dataset's "
        "test split first (e.g. out/cifar10); recorded in the manifest and card",
    )
    g.add_argument(
        "--min-labeler-accuracy",
        type=float,
        metavar="FRACTION",
        help="with --labeler-eval: refuse a labeler below this accuracy, e.g. 0.95",
    )
    add_overwrite(g, "a dataset of another config in --out")
    g.add_argument("--dry-run", action="store_true", help="check and print the plan, then stop")
    g.set_defaults(func=cmd_generate)
    for module in (convert_ddpm, npz, report):  # the other commands live in their own modules
        module.register(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    return GenerateConfig(
        out_dir=args.out,
        labeler=args.labeler,
        labeler_checkpoint=args.labeler_checkpoint,
        class_names=args.class_names,
        model=args.model,
        sampler=args.sampler,
        steps=args.steps,
        train=args.train,
        test=args.test,
        samples_per_shard=args.samples_per_shard,
        min_shards=args.min_shards,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        compile=args.compile or args.compile_mode != "default",
        compile_mode=args.compile_mode,
        shard_range=args.shard_range,
        workers=args.workers,
        ray=args.ray is not None,
        ray_address=args.ray or None,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
        labeler_eval=args.labeler_eval,
        min_labeler_accuracy=args.min_labeler_accuracy,
        license=License(args.license, args.license_name, args.license_link),
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from cifar5m.api import plan_generation, run_plan  # heavy (torch, diffusers): not loaded for --help
    from cifar5m.labeler_eval import describe as describe_accuracy
    from cifar5m.progress import run_with_bar

    plan = plan_generation(config_from_args(args))
    cfg = plan.cfg
    if cfg.labeler_eval and not cfg.dry_run:
        print(f"labeler accuracy: {describe_accuracy(plan.labeler_accuracy)}")
    print(json.dumps(describe(plan), indent=1))
    if cfg.dry_run:
        writer = plan.writer()
        committed = sum(writer.stats_path(s).is_file() for s in writer.plan())
        print(
            f"dry run: {len(writer.plan())} shards planned, {committed} with stats files in {cfg.out_dir}; "
            "nothing written"
        )
        return 0
    run_with_bar(plan, lambda bar: run_plan(plan, bar))
    return 0


def describe(plan) -> dict:
    cfg = plan.cfg
    return {
        "out": cfg.out_dir,
        "dataset_config": plan.dataset_config(),
        "class_names": list(plan.class_names),
        "image_shape": list(plan.pipeline.image_shape),
        "splits": cfg.splits(),
        "samples_per_shard": cfg.samples_per_shard,
        "min_shards": cfg.min_shards,
        "run": {
            "batch_size": cfg.batch_size,
            "device": cfg.device,
            "workers": cfg.workers,
            "compile": cfg.compile_hash_value(),
            "shards": cfg.shard_range,
            "ray": cfg.ray_address if cfg.ray else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        build_parser(),
        argv,
        interrupted_hint="interrupted: committed shards are kept and no "
        "partial shard is; re-run the same command to resume",
    )
