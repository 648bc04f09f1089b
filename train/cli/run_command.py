"""`python -m train run`: flags -> RunConfig -> validate -> print -> (--dry-run stops) -> train one run.

python -m train run --data DATASET --mode real --n 50000 --preset paper-cifar5m --out out/runs/real-50k
python -m train run --data DATASET --mode ideal --preset paper-cifar5m --out out/runs/ideal --dry-run
torchrun --nproc_per_node=8 -m train run --train-size 50000 ...   # DDP: the global batch is split over
                                            # the ranks; torchrun misreads `--n`, so write --train-size
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from train.cli.flags import add_control_flags, add_run_flags, config_from_args
from train.core.config import validate
from train.run import runfolder

log = logging.getLogger("train")


def add_run_command(sub) -> None:
    """Add `run` to the `python -m train` subparsers."""
    run = sub.add_parser(
        "run",
        help="train one Real World or Ideal World run",
        description="Train one run into its folder (config.json, metrics.jsonl, summary.json, "
        "checkpoints/last.pt). Re-running a finished run returns at once.",
    )
    add_run_flags(run)
    add_control_flags(run)
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    validate(cfg)
    log.info("config: %s", json.dumps(cfg.to_dict()))
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    # Deferred: the loop imports torch (1.5 s here), which --help and --dry-run never need.
    from train.run.loop import run_training

    summary = run_training(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    if args.log_to and os.environ.get("RANK", "0") == "0":
        from train.run.tracking import export_run

        export_run(cfg.out_dir, args.log_to)
    final = summary["final"]
    log.info(
        "%s: %s steps; T(n) = %s; final test error %.4f, soft-error %.4f; %s img/s; resume/inspect: %s",
        cfg.out_dir,
        f"{summary['steps_done']:,}",
        summary["fit_step"],
        final["test/error"],
        final["test/soft_error"],
        f"{summary['img_per_s'] or 0:,.0f}",
        runfolder.summary_path(cfg.out_dir),
    )
    return 0
