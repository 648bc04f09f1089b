"""The one CLI entry wrapper of every `python -m PACKAGE` command.

    sys.exit(run_cli(build_parser(), argv))

User errors (any `ToolkitError`) print one line `error: ...` and exit 2; Ctrl-C prints what to do next and
exits 130 (128 + SIGINT, the shell's convention). Our packages log at the chosen level (`--log-level`,
default INFO); libraries (timm, diffusers, ray) stay at WARNING, their INFO chatter is noise here. Under
torchrun only rank 0 logs at the chosen level.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from shards.card import LICENSES
from shards.errors import ToolkitError
from shards.manifest import MIN_SHARDS

INTERRUPTED_HINT = "interrupted; re-run the same command to resume"
# Every command's default output lives under this one git-ignored root: datasets in out/<name>,
# training runs and experiments in out/runs/<name>, the demo in out/demo.
OUTPUT_ROOT = "out"
RUNS_ROOT = os.path.join(OUTPUT_ROOT, "runs")
OUR_LOGGERS = ("shards", "cifar5m", "dogbird", "train", "demo")


def setup_logging(level: str = "INFO") -> None:
    # Under torchrun the other ranks speak only when something is wrong.
    level = level if os.environ.get("RANK", "0") == "0" else "WARNING"
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)


def one_line(exc: ToolkitError) -> str:
    """The error's message. One raised in a torch DataLoader worker (a shard that cannot be read while
    streaming) comes back re-raised by torch with the worker's whole traceback in its message
    (torch/_utils.py, ExceptionWrapper.reraise: "Caught X in DataLoader worker process N.\nOriginal
    Traceback ..."); its last line holds the original message."""
    text = str(exc)
    if text.startswith("Caught ") and "\nOriginal Traceback" in text:
        last = text.rstrip().rsplit("\n", 1)[-1]  # "shards.errors.ShardsError: <message>"
        return last.split(": ", 1)[-1]
    return text


def run_cli(
    parser: argparse.ArgumentParser, argv: list[str] | None = None, interrupted_hint: str = INTERRUPTED_HINT
) -> int:
    """Parse argv, call the chosen subcommand's `func(args)`, and map errors to exit statuses."""
    try:
        args = parser.parse_args(argv)  # inside: a type= parser may raise a ToolkitError
        setup_logging(getattr(args, "log_level", "INFO"))
        return args.func(args) or 0
    except ToolkitError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_hint, file=sys.stderr)
        return 130


def add_min_shards_flag(p: argparse.ArgumentParser) -> None:
    """--min-shards: the per-split shard floor (shards.manifest.MIN_SHARDS says why 16); shared by the tools."""
    p.add_argument(
        "--min-shards",
        type=int,
        default=MIN_SHARDS,
        metavar="N",
        help=f"every split gets at least N shards (smaller shards if need be) so that each loader "
        f"worker has one (default {MIN_SHARDS})",
    )


def add_license_flags(p: argparse.ArgumentParser) -> None:
    """--license (a Hub licence id) and, for `other`, --license-name and --license-link; shared by the tools."""
    p.add_argument(
        "--license",
        default="unknown",
        choices=LICENSES,
        help="the dataset's licence for its card (default unknown: state the source's licence here)",
    )
    p.add_argument("--license-name", default="", help="with --license other: the licence's id, e.g. my-license-1.0")
    p.add_argument(
        "--license-link", default="", help="with --license other: its URL, or LICENSE for a file in the repo"
    )
