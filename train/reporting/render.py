"""`python -m train report DIR`: re-render whatever DIR holds from saved metrics alone.

DIR is recognised as:
- a bootstrap experiment: `experiment.json` with kind "bootstrap" (or `real/` + `ideal/` run folders);
- a sweep: `experiment.json` with kind "sweep" (see train/experiments/sweep.py for the layout);
- a single run folder: `metrics.jsonl`.
Each writes `report.md`, its PNGs and (experiments) `results.json` into DIR; `format_headline` prints
the figures a render returns.
"""

from __future__ import annotations

from pathlib import Path

from train.errors import TrainError
from train.reporting.bootstrap_report import format_bootstrap_headline, render_bootstrap
from train.reporting.experiment_file import EXPERIMENT, read_experiment
from train.reporting.run_report import format_run_headline, render_run
from train.reporting.sweep_report import format_sweep_headline, render_sweep
from train.run import runfolder


def render(path: str | Path) -> dict:
    """Re-render whatever DIR holds (bootstrap, sweep or run) and return its headline figures."""
    path = Path(path)
    kind = detect_kind(path)
    if kind == "bootstrap":
        return render_bootstrap(path)
    if kind == "sweep":
        return render_sweep(path)
    return render_run(path)


def detect_kind(path: Path) -> str:
    if not path.is_dir():
        raise TrainError(f"{path}: no such folder; pass a run, bootstrap or sweep folder")
    experiment = path / EXPERIMENT
    if experiment.is_file():
        kind = read_experiment(path).get("kind")
        if kind in ("bootstrap", "sweep"):
            return kind
        raise TrainError(f"{experiment}: kind {kind!r} unknown; expected 'bootstrap' or 'sweep'")
    if runfolder.has_metrics(path):
        return "run"
    if runfolder.has_metrics(path / "real") and runfolder.has_metrics(path / "ideal"):
        return "bootstrap"
    raise TrainError(
        f"{path}: neither a run folder ({runfolder.METRICS}) nor an experiment ({EXPERIMENT}, or real/ "
        "and ideal/ run folders); pass the folder given to `train run --out` or `train bootstrap --out`"
    )


def format_headline(headline: dict) -> str:
    """A few console lines: where the report is and its headline figures."""
    if headline["kind"] == "sweep":
        return format_sweep_headline(headline)
    if headline["kind"] == "run":
        return format_run_headline(headline)
    return format_bootstrap_headline(headline)
