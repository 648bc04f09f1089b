"""The `python -m train` argument parser: `run`, `bootstrap`, `sweep`, `report`, `finetune` and `eval`.

`train.cli.main` hands `build_parser()` to `shards.entry.run_cli`, which calls the chosen command's `func`.
"""

from __future__ import annotations

import argparse

from shards.cliargs import root_parser
from train.cli.experiment_commands import add_experiment_commands
from train.cli.labeler_commands import add_labeler_commands
from train.cli.run_command import add_run_command


def build_parser() -> argparse.ArgumentParser:
    parser = root_parser("train", "Real World vs Ideal World trainer (Deep Bootstrap) on shards datasets.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_command(sub)
    add_experiment_commands(sub)
    add_labeler_commands(sub)
    return parser
