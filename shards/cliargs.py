"""The flags every command spells the same way, added by small helpers shared by all five CLIs.

    parser = root_parser("shards", "Check, describe, download, publish and import datasets.")
    add_out(p, "output dataset folder"); add_overwrite(p, "a dataset of another config in --out")
    add_samples_per_shard(p, 10_000); add_device(p); add_workers(p, "..."); add_ray(p)

Defaults come from the callers' config dataclasses; help texts show them through argparse's `%(default)s`.
"""

from __future__ import annotations

import argparse
import os
import sys

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
Flags = argparse.ArgumentParser | argparse._ArgumentGroup  # a parser or one of its argument groups


def prog_name(package: str) -> str:
    """The command as the user typed it: `deepboot-train` for a console script, `python -m train` for -m."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if invoked in ("", "-c", "__main__.py") or invoked.endswith(".py"):
        return f"python -m {package}"
    return invoked


def root_parser(package: str, description: str) -> argparse.ArgumentParser:
    """A command's top-level parser: `prog` as invoked, its description, and --log-level."""
    parser = argparse.ArgumentParser(prog=prog_name(package), description=description)
    add_log_level(parser)
    return parser


def add_log_level(parser: argparse.ArgumentParser, subcommand: bool = False) -> None:
    """--log-level; on a subcommand too, so it may follow the command's name (not given: the top's value)."""
    default = argparse.SUPPRESS if subcommand else "INFO"
    parser.add_argument(
        "--log-level",
        default=default,
        choices=LOG_LEVELS,
        type=str.upper,
        help="verbosity of the toolkit's messages (default INFO)",
    )


def add_out(parser: Flags, help: str) -> None:
    """--out (required): the folder the command writes (a dataset, a run or a report)."""
    parser.add_argument("--out", required=True, help=help)


def add_overwrite(parser: Flags, what: str) -> None:
    """--overwrite (alias --force): replace what --out (or the target) holds when it is something else."""
    parser.add_argument("--overwrite", "--force", dest="overwrite", action="store_true", help=f"replace {what}")


def add_samples_per_shard(parser: Flags, default: int) -> None:
    """--samples-per-shard (alias --shard-size): samples in every shard but a split's last."""
    parser.add_argument(
        "--samples-per-shard",
        "--shard-size",
        dest="samples_per_shard",
        type=int,
        default=default,
        metavar="N",
        help="samples per shard (default %(default)s)",
    )


def add_device(parser: Flags, default: str = "auto") -> None:
    """--device: auto (cuda when present), cpu, cuda or cuda:N."""
    parser.add_argument(
        "--device", default=default, help="auto (cuda when present), cpu, cuda or cuda:N (default %(default)s)"
    )


def add_workers(parser: Flags, default: int, help: str) -> None:
    """--workers: local worker processes."""
    parser.add_argument("--workers", type=int, default=default, metavar="N", help=f"{help} (default %(default)s)")


def add_ray(parser: Flags) -> None:
    """--ray [ADDRESS]: run on a Ray cluster; args.ray is None without the flag, "" for RAY_ADDRESS or a new one."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster: ADDRESS, else RAY_ADDRESS, else a new local one",
    )
