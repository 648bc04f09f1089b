"""`python -m train COMMAND ...`: see `python -m train --help`."""
from __future__ import annotations

import sys

from shards.entry import run_cli
from train.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv, interrupted_hint="interrupted; re-run the same command with --resume "
                   "to continue")


if __name__ == "__main__":
    sys.exit(main())
