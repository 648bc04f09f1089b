"""The experiment commands of `python -m train`: bootstrap, sweep and report.

    python -m train bootstrap --data DATASET --n 50000 --preset paper-cifar5m --seeds 3 --out out/runs/boot
    python -m train sweep --data DATASET --n 5000,10000 --model mcnn,preact-resnet18 --lr 0.1,0.05 --seeds 3 \
        --preset paper-cifar5m --out out/runs/sweep [--ray]
    python -m train report out/runs/boot        # re-render report.md and PNGs from saved metrics
    python -m train bootstrap --plan out/runs/boot --margin 0.01   # seeds and test size for 80% power

`bootstrap` and `sweep` take every trainer flag of `train run` (they share one config); `--seeds K` runs
seeds --seed .. --seed+K-1 (the reports' paired tests need K >= 2); the sweep's `--n`, `--model` and
`--lr` take comma lists. Both take `--pack K`: up to K runs trained as one packed model (`train.run.packed`),
and `--margin M`: the equivalence margin of the verdicts, declared before the run (`train.reporting.margin`).
`train.cli.parser.build_parser` calls `add_experiment_commands`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os

from shards.cliargs import add_overwrite, add_ray
from shards.entry import RUNS_ROOT
from shards.runtime import start_ray
from train.cli.flags import add_cache_flag, add_control_flags, add_log_to_flag, add_run_flags, config_from_args
from train.core.config import default_seeds
from train.errors import TrainError
from train.experiments.common import folder_name
from train.reporting.margin import DEFAULT_MARGIN, Margin
from train.reporting.render import format_headline, render

log = logging.getLogger("train")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give integers separated by commas, e.g. 5000,10000") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more sizes >= 1, e.g. 5000,10000")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 0.1,0.05") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more learning rates > 0, e.g. 0.1,0.05")
    return values


def _seeds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seeds >= 1 (3 or more for a verdict)")
    return value


def _str_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more model names separated by commas")
    return values


def _pack_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give the number of runs to train as one model, >= 1 (1 = one run at a time)"
        )
    return value


def _add_pack_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pack",
        type=_pack_size,
        default=None,
        metavar="K",
        help="train up to K runs (same model and schedule; world, n, seed and lr may differ) as "
        "one packed model; 1 = one run at a time (default: 16 on a GPU, 1 on CPU, where packing "
        "measured slower for all but tiny models)",
    )


def _margin(text: str) -> Margin:
    try:
        return Margin.parse(text)
    except TrainError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--margin={text}: ")) from None


def _add_margin_flag(parser) -> None:
    parser.add_argument(
        "--margin",
        type=_margin,
        default=Margin.parse(DEFAULT_MARGIN),
        metavar="M",
        help="equivalence margin of the verdict, declared before the run and saved in "
        "experiment.json: absolute (0.01) or a percentage of the generalisation gap's lower 95%% "
        f"confidence bound (20%%); default {DEFAULT_MARGIN.replace('%', '%%')}, see "
        "train/reporting/margin.py",
    )


def _hide_mode(parser: argparse.ArgumentParser) -> None:
    """Both worlds run, so --mode means nothing here: kept (to name it in the error) but not shown."""
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)


def add_experiment_commands(sub) -> None:
    """Add `bootstrap`, `sweep` and `report` to the `python -m train` subparsers."""
    # conflict_handler "resolve" lets a command re-declare a run flag (--mode here; --n, --model below).
    boot = sub.add_parser(
        "bootstrap",
        conflict_handler="resolve",
        help="Real World (n) vs Ideal World with identical settings, then a report",
        description="Run the Real World on n samples and the Ideal World with one shared config into "
        "OUT/real and OUT/ideal, then write OUT/report.md with figures (default OUT: "
        "out/runs/bootstrap-nN-MODEL-seedS).",
    )
    add_run_flags(boot)
    _hide_mode(boot)
    boot.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="number of seeds: --seed, --seed+1, ... each a "
        "Real and an Ideal run (default: 10 under a paper preset, as the paper's sweep, else 1; "
        "with one seed the report can give no verdict)",
    )
    _add_pack_flag(boot)
    _add_margin_flag(boot)
    boot.add_argument(
        "--plan",
        metavar="PILOT",
        default=None,
        help="print the seeds and test-set size --margin needs at 80%% power, from the spread "
        "measured in PILOT (a bootstrap folder with >= 2 seeds), and stop without training",
    )
    add_control_flags(boot)
    boot.set_defaults(func=cmd_bootstrap)

    # The sweep's --n and --model (comma lists) replace the run flags of the same name.
    sweep = sub.add_parser(
        "sweep",
        conflict_handler="resolve",
        help="the grid n x models x seeds of bootstrap comparisons",
        description="Run Real and Ideal for every (model, n, seed) into OUT/runs/ (one Ideal run per "
        "(model, seed) serves every n), skipping finished runs, then write OUT/report.md with the "
        "Real-vs-Ideal scatter and the learning curves (default OUT: out/runs/sweep).",
    )
    add_run_flags(sweep)
    _hide_mode(sweep)
    grid = sweep.add_argument_group("sweep grid")
    grid.add_argument(
        "--n",
        dest="n_list",
        type=_int_list,
        required=True,
        help="Real World sizes, comma-separated, e.g. 5000,10000,25000,50000",
    )
    grid.add_argument(
        "--model",
        dest="model_list",
        type=_str_list,
        default=None,
        help="models, comma-separated (default: the preset's or preact-resnet18)",
    )
    grid.add_argument(
        "--lr",
        dest="lr_list",
        type=_float_list,
        default=None,
        help="peak learning rates, comma-separated, e.g. 0.1,0.05 (default: the preset's or 0.1)",
    )
    grid.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="number of seeds: --seed, --seed+1, ... (default: 10 under a paper preset, as the paper's sweep, else 1)",
    )
    _add_pack_flag(grid)
    _add_margin_flag(grid)
    add_log_to_flag(grid)
    add_cache_flag(grid)
    add_ray(grid)  # one GPU per run when the cluster has GPUs, else one CPU
    control = sweep.add_argument_group("run control")
    add_overwrite(control, "every run of the grid: start them again")
    control.add_argument("--dry-run", action="store_true", help="print the runs of the grid and stop")
    control.add_argument("--no-progress", action="store_true", help="no progress bars")
    sweep.set_defaults(func=cmd_sweep)

    report = sub.add_parser(
        "report",
        help="re-render report.md and figures from saved metrics",
        description="Re-render report.md, PNGs and results.json of a bootstrap experiment, a sweep or a "
        "single run folder from its saved metrics, and print the headline figures.",
    )
    report.add_argument("dirs", nargs="+", metavar="DIR", help="run, bootstrap or sweep folder")
    report.set_defaults(func=cmd_report)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    # Deferred: the experiments import the training loop and so torch (1.5 s here); --dry-run needs neither.
    from train.experiments.bootstrap import bootstrap, plan_bootstrap

    if args.mode is not None:
        raise TrainError(f"--mode={args.mode}: bootstrap runs both worlds; drop --mode (use `train run` for one)")
    if args.plan is not None:
        from train.reporting.bootstrap_report import plan_from_pilot  # deferred: reads runs, imports scipy

        print(plan_from_pilot(args.plan, args.margin).describe())
        return 0
    cfg = config_from_args(args, mode="real")
    args.seeds = args.seeds or default_seeds(args.preset)
    if args.out_dir is None:
        cfg = dataclasses.replace(
            cfg, out_dir=os.path.join(RUNS_ROOT, f"bootstrap-n{cfg.n}-{folder_name(cfg.model)}-seed{cfg.seed}")
        )
    log.info("shared config:\n%s", json.dumps(cfg.to_dict(), indent=1))
    if args.dry_run:
        for run in plan_bootstrap(cfg, args.seeds, args.margin)[1]:
            print(json.dumps(run.to_dict(), indent=1))
        return 0
    headline = bootstrap(
        cfg,
        seeds=args.seeds,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        pack=args.pack,
        margin=args.margin,
    )
    if headline:  # empty on torchrun ranks other than 0
        print(format_headline(headline))
        if args.log_to:
            from train.run.tracking import export_run

            for run in plan_bootstrap(cfg, args.seeds)[1]:
                export_run(run.out_dir, args.log_to)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    # Deferred: the experiments import the training loop and so torch (1.5 s here); --dry-run needs neither.
    from train.experiments.sweep import plan_sweep, sweep

    if args.mode is not None:
        raise TrainError(f"--mode={args.mode}: a sweep runs both worlds; drop --mode")
    base = config_from_args(args, mode="real")
    if args.out_dir is None:
        base = dataclasses.replace(base, out_dir=os.path.join(RUNS_ROOT, "sweep"))
    models = args.model_list or [base.model]
    seeds = [base.seed + i for i in range(args.seeds or default_seeds(args.preset))]
    lrs = args.lr_list or [base.lr]
    if args.dry_run:
        for cfg in plan_sweep(base, args.n_list, models, seeds, lrs)[1]:
            print(json.dumps(cfg.to_dict()))
        return 0
    if args.ray:
        start_ray(args.ray)  # join ADDRESS now; the sweep's tasks find the cluster joined
    headline = sweep(
        base,
        ns=args.n_list,
        models=models,
        seeds=seeds,
        lrs=lrs,
        use_ray=args.ray is not None,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        pack=args.pack,
        margin=args.margin,
    )
    if headline:
        print(format_headline(headline))
        if args.log_to:
            from train.run.tracking import export_run

            for run in plan_sweep(base, args.n_list, models, seeds, lrs)[1]:
                export_run(run.out_dir, args.log_to)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    for path in args.dirs:
        print(format_headline(render(path)))
    return 0
