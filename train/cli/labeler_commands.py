"""The classifier commands of `python -m train`: finetune and eval.

    python -m train finetune --data out/cifar10 --model timm:resnetv2_152x2_bit.goog_in21k \
        --preset bit-hyperrule --out out/labeler          # then: cifar5m generate --labeler local-dir:out/labeler
    python -m train eval --model local-dir:out/labeler --data out/cifar10 [--split test] [--record]

`finetune` takes every trainer flag of `train run` (one Real World run over the whole train split;
`--n` and `--mode` do not apply); with `--preset bit-hyperrule` a `--batch-size` given without `--lr`
scales the lr linearly (0.003 at 512).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from pathlib import Path

import shards
from shards.cliargs import add_device
from shards.entry import OUTPUT_ROOT
from shards.runtime import resolve_device
from shards.urls import is_url
from train.cli.flags import add_control_flags, add_run_flags, config_from_args
from train.core.config import validate
from train.errors import TrainError

log = logging.getLogger("train")

DEFAULT_LABELER_DIR = f"{OUTPUT_ROOT}/labeler"


def add_labeler_commands(sub) -> None:
    """Add `finetune` and `eval` to the `python -m train` subparsers."""
    tune = sub.add_parser(
        "finetune",
        conflict_handler="resolve",
        help="fine-tune a timm classifier and save it as a timm folder",
        description="Fine-tune a timm model on a dataset's train split with the trainer (resumable run in "
        "OUT/training), save it in timm's format in OUT (config.json with label_names, model.safetensors), "
        f"measure it on the test split and record label_accuracy in its config (default OUT: {DEFAULT_LABELER_DIR}).",
    )
    add_run_flags(tune)
    # One run over the whole train split: --mode and --n are kept only to name them in the error.
    tune.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    tune.add_argument("--n", "--train-size", dest="n", default=None, help=argparse.SUPPRESS)
    add_control_flags(tune)
    tune.set_defaults(func=cmd_finetune)

    ev = sub.add_parser(
        "eval",
        help="accuracy, per-class accuracy and ECE of a timm classifier on a dataset",
        description="Evaluate a timm classifier (local-dir:DIR or hf-hub:ORG/NAME) on a split of a dataset "
        "of ours, preparing images as the labeler does when it labels.",
    )
    ev.add_argument("--model", required=True, help="local-dir:DIR or hf-hub:ORG/NAME")
    ev.add_argument("--data", required=True, help="dataset folder or URL")
    ev.add_argument("--split", default="test", help="split to evaluate (default test)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N samples")
    ev.add_argument("--batch-size", type=int, default=256, help="default 256")
    add_device(ev)
    ev.add_argument(
        "--record",
        action="store_true",
        help="write label_accuracy (and _on, per-class, ECE) into the local-dir model's config.json",
    )
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(func=cmd_eval)


def cmd_finetune(args: argparse.Namespace) -> int:
    for flag, value in (("mode", args.mode), ("n", args.n)):
        if value is not None:
            raise TrainError(f"--{flag}={value}: finetune trains on the whole train split; drop --{flag}")
    cfg = config_from_args(args, mode="real", out_dir=args.out_dir or DEFAULT_LABELER_DIR)
    manifest = _manifest(cfg)
    cfg = dataclasses.replace(cfg, n=_train_pool(cfg, manifest), image_size=cfg.image_size or _data_size(cfg, manifest))
    validate(cfg)
    log.info("config: %s", json.dumps(cfg.to_dict()))
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    # Deferred: fine-tuning imports torch and timm (seconds), which --help and --dry-run never need.
    from train.labeler.finetune import finetune

    result = finetune(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    if result["eval"]:
        print(_format(result["eval"]))
        print(f"saved: {result['out']} (use it as --labeler local-dir:{result['out']})")
        if args.log_to:
            from train.labeler.finetune import TRAINING
            from train.run.tracking import export_run

            export_run(os.path.join(result["out"], TRAINING), args.log_to)
    return 0


def _manifest(cfg) -> shards.Manifest:
    if not cfg.data:
        raise TrainError("--data='': give a dataset folder or URL")
    try:
        return shards.load_manifest(cfg.data if is_url(cfg.data) else shards.resolve_dataset(cfg.data))
    except shards.ShardsError as exc:
        raise TrainError(str(exc)) from exc


def _data_size(cfg, manifest: shards.Manifest) -> int:
    """--image-size by default: the data's own size when all its images share one square size."""
    shape = manifest.image_shape
    if shape is None or shape[0] != shape[1]:
        raise TrainError(
            f"--image-size is not set and {cfg.data}'s images have no one square size "
            f"({'they differ' if shape is None else f'{shape[0]}x{shape[1]}'}); pass it (BiT: 128)"
        )
    return shape[0]


def _train_pool(cfg, manifest: shards.Manifest) -> int:
    """The size of the train split, from the manifest (n of the one Real World run over all of it)."""
    if cfg.train_split not in manifest.splits:
        raise TrainError(
            f"{cfg.data}: no split {cfg.train_split!r} (it has {', '.join(manifest.splits)}); pass --train-split"
        )
    return manifest.splits[cfg.train_split].count


def cmd_eval(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise TrainError(f"--batch-size={args.batch_size} --limit={args.limit}: both must be >= 1")
    if args.record and not args.model.startswith("local-dir:"):
        raise TrainError(f"--record: only a local-dir: model's config can be written (got {args.model})")
    # Deferred: evaluation imports torch and timm (seconds), which --help never needs.
    from train.labeler.evaluate import evaluate_classifier, load_classifier
    from train.labeler.finetune import record_accuracy

    result = evaluate_classifier(
        load_classifier(args.model),
        args.data,
        args.split,
        resolve_device(args.device, TrainError),
        args.batch_size,
        args.limit,
    )
    if args.record:
        record_accuracy(Path(args.model[len("local-dir:") :]), result)
    print(json.dumps(result.to_dict(), indent=1) if args.json else _format(result.to_dict()))
    return 0


def _format(result: dict) -> str:
    lines = [f"accuracy {result['accuracy']:.2%} on {result['on']}; ECE {result['ece']:.4f}", "per class:"]
    for name, acc in result["per_class"].items():
        lines.append(f"  {name:<16} {'-' if acc is None else f'{acc:.2%}'}")
    return "\n".join(lines)
