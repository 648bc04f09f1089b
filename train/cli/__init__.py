"""The argparse front of `python -m train`: `parser.build_parser` joins `run_command` (one run) and
`experiment_commands` (bootstrap, sweep, report); `flags` holds the trainer flags they share."""
