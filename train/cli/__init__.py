"""The argparse front of `python -m train` (`deepboot-train`): `parser.build_parser` joins `run_command`
(one run), `experiment_commands` (bootstrap, sweep, report) and `labeler_commands` (finetune, eval);
`flags` holds the trainer flags they share."""

from __future__ import annotations

from shards.entry import run_cli
from train.cli.parser import build_parser

INTERRUPTED_HINT = "interrupted; re-run the same command with --resume to continue"


def main(argv: list[str] | None = None) -> int:
    """`python -m train ARGS`: run the command; user errors print one `error:` line and exit 2."""
    return run_cli(build_parser(), argv, interrupted_hint=INTERRUPTED_HINT)
