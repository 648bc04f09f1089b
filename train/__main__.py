"""`python -m train COMMAND ...`: see `python -m train --help`.

User errors (TrainError, shards.ShardsError) print one line `error: ...` and exit with code 2.
"""
from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from shards import ShardsError
    from train.cli import build_parser
    from train.errors import TrainError

    args = build_parser().parse_args(argv)
    # Under torchrun only rank 0 reports progress; the others speak only when something is wrong.
    level = args.log_level if os.environ.get("RANK", "0") == "0" else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except (TrainError, ShardsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
