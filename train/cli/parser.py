"""The `python -m train` argument parser: `run`, `bootstrap`, `sweep`, `report`, `finetune` and `eval`.

`train/__main__.py` hands `build_parser()` to `shards.entry.run_cli`, which calls the chosen command's `func`.
"""
from __future__ import annotations

import argparse

from train.cli.experiment_commands import add_experiment_commands
from train.cli.labeler_commands import add_labeler_commands
from train.cli.run_command import add_run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description="Real World vs Ideal World trainer "
                                     "(Deep Bootstrap) on shards datasets.")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_command(sub)
    add_experiment_commands(sub)
    add_labeler_commands(sub)
    return parser
