"""Experiment tracking: a finished run's config, metrics at every evaluation and T(n), copied into Weights &
Biases, TensorBoard or MLflow (`--log-to wandb,tensorboard,mlflow`).

    export_run("out/runs/real-50k", ("tensorboard", "mlflow"))

The run folder (config.json, metrics.jsonl, summary.json) stays the record: each tracker gets a copy read
from it when the run ends, every evaluation at its own step, so a tracker failure can never change or
stop a run, and a resumed run is copied once (re-running a finished command copies it again, as a new
tracker run). Each tracker is an optional extra (`pip install
'.[tracking]'`) and works with no network: W&B in offline mode unless WANDB_MODE says otherwise (`wandb
sync` uploads later), TensorBoard event files in RUN/tensorboard, MLflow in a file store RUN/mlruns unless
MLFLOW_TRACKING_URI is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from train.errors import TrainError
from train.run import runfolder

TRACKERS = ("wandb", "tensorboard", "mlflow")


@dataclass(frozen=True)
class RunRecord:
    """What a tracker is given: the run's name, config, evaluation rows and summary."""

    name: str
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]

    def metrics(self, row: dict[str, Any]) -> dict[str, float]:
        """The row's numbers (JSON null and the step itself left out)."""
        return {
            k: float(v)
            for k, v in row.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }

    def results(self) -> dict[str, float]:
        """T(n) and the final test figures, the summary numbers a tracker shows beside the curves."""
        final = self.summary.get("final") or {}
        found = {
            "fit_step": self.summary.get("fit_step"),
            "steps_done": self.summary.get("steps_done"),
            **{f"final/{k}": v for k, v in final.items() if k.startswith("test")},
        }
        return {k: float(v) for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def parse_trackers(text: str) -> tuple[str, ...]:
    """`wandb,tensorboard` -> ("wandb", "tensorboard"); an unknown name is a TrainError."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown or not names:
        raise TrainError(f"--log-to {text!r}: choose from {', '.join(TRACKERS)}, comma-separated")
    return names


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    summary = runfolder.read_summary(run_dir)
    if summary is None:
        raise TrainError(f"{run_dir}: no summary.json (the run has not finished); nothing to log")
    return RunRecord(Path(run_dir).name, runfolder.read_config(run_dir) or {}, runfolder.read_metrics(run_dir), summary)


def export_run(run_dir: str | os.PathLike, trackers: tuple[str, ...]) -> None:
    """Copy a finished run into each tracker; a missing package or a tracker error is one TrainError."""
    record = read_run(run_dir)
    for name in trackers:
        try:
            EXPORTERS[name](record, Path(run_dir))
        except ImportError as exc:
            raise TrainError(
                f"--log-to {name}: {exc.name or name} is not installed; pip install "
                f"'deep-bootstrap-data[tracking]' (the run itself is complete in {run_dir})"
            ) from exc
        except TrainError:
            raise
        except Exception as exc:  # noqa: BLE001 - each tracker raises its own types; the run is safe on disk
            raise TrainError(
                f"--log-to {name}: logging {run_dir} failed ({type(exc).__name__}: {exc}); the run "
                "is complete on disk, re-run the same command to log it again"
            ) from exc


def to_tensorboard(record: RunRecord, run_dir: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir / "tensorboard")) as writer:
        writer.add_text("config", f"```json\n{json.dumps(record.config, indent=1)}\n```")
        for row in record.rows:
            for key, value in record.metrics(row).items():
                writer.add_scalar(key, value, row["step"])
        for key, value in record.results().items():
            writer.add_scalar(f"summary/{key}", value, record.summary.get("steps_done") or 0)


_WANDB_MODES: dict[str, Literal["online", "offline", "disabled", "shared"]] = {
    "online": "online",
    "offline": "offline",
    "disabled": "disabled",
    "shared": "shared",
}


def to_wandb(record: RunRecord, run_dir: Path) -> None:
    import wandb

    given = os.environ.get("WANDB_MODE") or "offline"  # no account or network needed; `wandb sync` later
    mode = _WANDB_MODES.get(given)
    if mode is None:
        raise TrainError(f"WANDB_MODE={given}: use one of {', '.join(_WANDB_MODES)}")
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "deep-bootstrap"),
        name=record.name,
        config=record.config,
        dir=str(run_dir),
        mode=mode,
        reinit="create_new",
    )
    try:
        for row in record.rows:
            run.log(record.metrics(row), step=row["step"])
        run.summary.update(record.results())
    finally:
        run.finish()


def to_mlflow(record: RunRecord, run_dir: Path) -> None:
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # A file store needs no server nor database (mlflow-skinny has no SQLAlchemy for sqlite://); MLflow
        # 3.x keeps it in maintenance mode and asks for this opt-in (its error message names it).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "deep-bootstrap"))
    with mlflow.start_run(run_name=record.name):
        mlflow.log_params({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in record.config.items()})
        for row in record.rows:
            mlflow.log_metrics(record.metrics(row), step=row["step"])
        mlflow.log_metrics(record.results())


EXPORTERS: dict[str, Callable[[RunRecord, Path], None]] = {
    "wandb": to_wandb,
    "tensorboard": to_tensorboard,
    "mlflow": to_mlflow,
}
