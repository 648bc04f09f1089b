"""Read saved runs and compare the Real and Ideal Worlds: the numbers behind reports and plots.

A run folder (written by `train.run.loop.run_training`) holds `config.json`, `metrics.jsonl` (one flat
JSON row per evaluation: `step`, `test/soft_error`, `train/error`, `<extra>/loss`, ...) and, once the
run has ended, `summary.json` (T(n) as `fit_step`, ledger, throughput). This module reads those files
only, so every figure can be recomputed from disk (`python -m train report DIR`).

Definitions (Nakkiran et al. 2021, "The Deep Bootstrap"):
- T(n): the first evaluated step at which the Real World's train error is <= the fit threshold (1%).
- bootstrap gap at step t: Real test metric - Ideal test metric, both at step t.
- generalisation gap at T(n): Real test metric - Real train metric at T(n).

    from train.reporting.results import load_run, compare_worlds
    cmp = compare_worlds(load_run("exp/real"), load_run("exp/ideal"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.core.stopping import DEFAULT_FIT_THRESHOLD, fit_step
from train.errors import TrainError
from train.reporting.statistics import SeedCurves
from train.run import runfolder

METRICS = ("soft_error", "error", "loss")
METRIC_NAMES = {"soft_error": "soft-error", "error": "error", "loss": "loss"}


@dataclass(frozen=True)
class RunRecord:
    """One run folder as saved: its config, its metrics rows (sorted by step) and its summary."""

    run_dir: Path
    config: dict
    rows: tuple
    summary: dict | None

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def fit_threshold(self) -> float:
        for source in (self.summary or {}, self.config):
            if source.get("fit_threshold") is not None:
                return float(source["fit_threshold"])
        return DEFAULT_FIT_THRESHOLD

    def fit_step(self) -> int | None:
        """T(n) as the trainer recorded it, else the first logged step with train error <= threshold."""
        if self.summary is not None and "fit_step" in self.summary:
            step = self.summary["fit_step"]
            return None if step is None else int(step)
        return fit_step(self.rows, self.fit_threshold)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of every row that logged `key` with a number."""
        pairs = [(row["step"], row[key]) for row in self.rows if row.get(key) is not None]
        if not pairs:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        steps, values = zip(*pairs)
        return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=float)

    def eval_sets(self) -> list[str]:
        """Evaluated test sets: `test` first, then extra test sets by name (`train` excluded)."""
        names = {key.rsplit("/", 1)[0] for row in self.rows for key in row if key.endswith("/soft_error")}
        names.discard("train")
        return (["test"] if "test" in names else []) + sorted(names - {"test"})

    def last_step(self) -> int:
        return int(self.rows[-1]["step"])


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run folder; a missing summary means the run has not finished (or was killed)."""
    run_dir = Path(run_dir)
    if not runfolder.has_metrics(run_dir):
        raise TrainError(
            f"{run_dir}: no {runfolder.METRICS}, so not a run folder (or the run never reached its first "
            "evaluation); run `python -m train run ... --out DIR` or pass another folder"
        )
    # A resumed run may log a step again: the latest row wins.
    by_step = {int(row["step"]): row for row in runfolder.read_metrics(run_dir)}
    rows = tuple(by_step[step] for step in sorted(by_step))
    if not rows:
        raise TrainError(f"{run_dir / runfolder.METRICS}: no evaluations logged yet; resume the run with --resume")
    return RunRecord(run_dir, runfolder.read_config(run_dir) or {}, rows, runfolder.read_summary(run_dir))


def value_at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    """The value logged at `step`, linearly interpolated between logged steps; nan outside them."""
    if len(steps) == 0 or step < steps[0] or step > steps[-1]:
        return math.nan
    return float(np.interp(step, steps, values))


@dataclass(frozen=True)
class Aligned:
    """One metric of both worlds on the Real World's evaluated steps (within the Ideal run's range)."""

    steps: np.ndarray
    real: np.ndarray
    ideal: np.ndarray
    interpolated: bool  # True when some Real step was not evaluated in the Ideal run

    @property
    def gap(self) -> np.ndarray:
        return self.real - self.ideal


def align(real: RunRecord, ideal: RunRecord, key: str) -> Aligned:
    """Both worlds' `key` on common steps: exact when the schedules match, interpolated if not."""
    real_steps, real_values = real.series(key)
    ideal_steps, ideal_values = ideal.series(key)
    if len(ideal_steps) == 0:
        keep = np.zeros(len(real_steps), dtype=bool)
    else:
        keep = (real_steps >= ideal_steps[0]) & (real_steps <= ideal_steps[-1])
    steps = real_steps[keep]
    ideal_on_real = np.interp(steps, ideal_steps, ideal_values) if len(steps) else np.zeros(0)
    interpolated = not bool(np.isin(steps, ideal_steps).all())
    return Aligned(steps, real_values[keep], ideal_on_real, interpolated)


def compare_metric(real: RunRecord, ideal: RunRecord, key: str, fit_step: int | None) -> dict:
    """Real vs Ideal for one metric: at T(n), at the end, and the largest |gap| for t <= T(n).

    Without a T(n) (Real never fit) the reference step is the last common step and the window is
    every common step.
    """
    aligned = align(real, ideal, key)
    if len(aligned.steps) == 0:
        raise TrainError(
            f"{real.run_dir} and {ideal.run_dir}: no common evaluated steps for {key}; "
            "run both worlds with the same --steps and evaluation schedule"
        )
    ref_step = int(aligned.steps[-1]) if fit_step is None else fit_step
    window = aligned.steps <= ref_step
    gaps = aligned.gap[window]
    worst = int(np.argmax(np.abs(gaps))) if len(gaps) else None
    real_steps, real_values = real.series(key)
    ideal_steps, ideal_values = ideal.series(key)
    real_at, ideal_at = value_at(real_steps, real_values, ref_step), value_at(ideal_steps, ideal_values, ref_step)
    same_end = real_steps[-1] == ideal_steps[-1]
    return {
        "real_at_fit": real_at,
        "ideal_at_fit": ideal_at,
        "gap_at_fit": real_at - ideal_at,
        "max_abs_gap": math.nan if worst is None else float(abs(gaps[worst])),
        "max_gap": math.nan if worst is None else float(gaps[worst]),
        "max_gap_step": None if worst is None else int(aligned.steps[window][worst]),
        "real_end": float(real_values[-1]),
        "real_end_step": int(real_steps[-1]),
        "ideal_end": float(ideal_values[-1]),
        "ideal_end_step": int(ideal_steps[-1]),
        "gap_end": float(real_values[-1] - ideal_values[-1]) if same_end else math.nan,
        "interpolated": aligned.interpolated,
    }


def compare_worlds(real: RunRecord, ideal: RunRecord) -> dict:
    """Everything a bootstrap report states, as plain numbers (nan where undefined)."""
    fit_step = real.fit_step()
    sets = [name for name in real.eval_sets() if name in ideal.eval_sets()]
    if "test" not in sets:
        raise TrainError(f"{real.run_dir}, {ideal.run_dir}: no test/soft_error logged in both runs")
    per_set = {
        name: {
            m: compare_metric(real, ideal, f"{name}/{m}", fit_step)
            for m in METRICS
            if len(real.series(f"{name}/{m}")[0]) and len(ideal.series(f"{name}/{m}")[0])
        }
        for name in sets
    }
    ref_step = fit_step if fit_step is not None else int(align(real, ideal, "test/soft_error").steps[-1])
    return {
        "fit_step": fit_step,
        "fit_threshold": real.fit_threshold,
        "ref_step": ref_step,
        "sets": per_set,
        "generalisation": _generalisation(real, ideal, ref_step),
        "interpolated": any(e["interpolated"] for metrics in per_set.values() for e in metrics.values()),
    }


def _generalisation(real: RunRecord, ideal: RunRecord, step: int) -> dict:
    """Train and test metrics of both worlds at `step`; `real_gap` = Real test - Real train."""
    out = {}
    for metric in METRICS:
        row = {}
        for world, run in (("real", real), ("ideal", ideal)):
            for split in ("train", "test"):
                row[f"{world}_{split}"] = value_at(*run.series(f"{split}/{metric}"), step)
        row["real_gap"] = row["real_test"] - row["real_train"]
        out[metric] = row
    return out


# Fields that may differ between the two worlds of one comparison: the world itself, its folder,
# n (the Ideal World has none), and settings that do not change what a run computes.
WORLD_FIELDS = ("mode", "out_dir", "n", "device", "num_workers", "checkpoint_every_steps")


def config_differences(real: RunRecord, ideal: RunRecord, allowed=WORLD_FIELDS) -> dict:
    """Config keys whose values differ between the worlds, beyond those that may differ."""
    keys = set(real.config) | set(ideal.config)
    return {
        key: (real.config.get(key), ideal.config.get(key))
        for key in sorted(keys - set(allowed))
        if real.config.get(key) != ideal.config.get(key)
    }


def seed_curves(pairs: list[tuple[RunRecord, RunRecord]], name: str, metric: str) -> SeedCurves:
    """One metric of K (Real, Ideal) seed pairs on common steps: the first Real run's evaluated steps within
    the range every run covers, other runs interpolated onto them (they share one schedule, so exactly)."""
    key = f"{name}/{metric}"
    series = [(real.series(key), ideal.series(key), real.series(f"train/{metric}")) for real, ideal in pairs]
    low = max(s[0][0] for trio in series for s in trio)
    high = min(s[0][-1] for trio in series for s in trio)
    first_steps = series[0][0][0]
    steps = first_steps[(first_steps >= low) & (first_steps <= high)]
    if len(steps) == 0:
        raise TrainError(
            f"{pairs[0][0].run_dir}: no evaluated steps common to every run for {key}; "
            "run every seed and world with the same --steps and evaluation schedule"
        )

    def on_steps(index: int) -> np.ndarray:
        return np.array([np.interp(steps, *trio[index]) for trio in series])

    real_cfg = pairs[0][0].config
    return SeedCurves(
        steps=steps,
        real=on_steps(0),
        ideal=on_steps(1),
        real_train=on_steps(2),
        fit_steps=tuple(real.fit_step() for real, _ in pairs),
        first_epoch_step=(real_cfg.get("n") or 0) / (real_cfg.get("batch_size") or 1),
    )


def json_safe(value):
    """Nested dicts/lists with nan/inf turned into None, so the result is strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
