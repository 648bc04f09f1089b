"""The files of an experiment folder (bootstrap or sweep) beside its run folders: `experiment.json`
(kind, shared config, the runs), and what a report writes (`report.md`, `results.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shards.errors import ShardsError
from shards.jsonio import read_json_object, write_json_atomic
from train.errors import TrainError
from train.reporting.results import json_safe

EXPERIMENT = "experiment.json"
REPORT = "report.md"
RESULTS = "results.json"


def read_experiment(exp_dir: str | Path) -> dict[str, Any]:
    """The experiment's description, {} when the folder has none; unreadable JSON is a TrainError."""
    try:
        return read_json_object(
            Path(exp_dir) / EXPERIMENT,
            default={},
            fix="re-run the experiment with --overwrite",
            expected="an experiment description (a JSON object)",
        )
    except ShardsError as exc:
        raise TrainError(str(exc)) from None


def write_results(exp_dir: str | Path, results: dict[str, Any]) -> None:
    """Every number of a report, as strict JSON (nan/inf written as null)."""
    write_json_atomic(Path(exp_dir) / RESULTS, json_safe(results))
