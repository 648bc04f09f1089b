"""Number formats and the tables every report shares (ledger, runs).

The run, bootstrap and sweep reports all import these, so they never import each other.
"""
from __future__ import annotations

import math
from pathlib import Path

from train.reporting.results import RunRecord


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_gap(value, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def fmt_int(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{round(value):,}"


def ledger_table(runs: list[tuple[str, RunRecord]]) -> list[str]:
    lines = ["## Sample ledger", "",
             "| run | unique samples | total draws | pool size | passes | no reuse | within subset | subset hash |",
             "|---|---|---|---|---|---|---|---|"]
    for label, run in runs:
        led = (run.summary or {}).get("ledger")
        if not led:
            lines.append(f"| {label} | run not finished | | | | | | |")
            continue
        passes = led.get("passes")
        lines.append(f"| {label} | {fmt_int(led.get('unique_samples'))} | {fmt_int(led.get('total_draws'))} | "
                     f"{fmt_int(led.get('pool_size'))} | {fmt(passes, 3) if passes is not None else 'n/a'} | "
                     f"{led.get('no_reuse')} | {led.get('within_subset', '-')} | `{led.get('subset_hash') or '-'}` |")
    return lines + ["", "Passes are over the n-subset for Real (many expected) and over the pool for Ideal, "
                    "which must show no reuse.", ""]


def runs_table(base: Path, runs: list[tuple[str, RunRecord]]) -> list[str]:
    lines = ["## Runs", "", "| run | folder | steps done | img/s | wall time (s) | config hash |",
             "|---|---|---|---|---|---|"]
    for label, run in runs:
        s = run.summary or {}
        done = s.get("steps_done", run.last_step())
        folder = run.run_dir.relative_to(base).as_posix() if run.run_dir.is_relative_to(base) else run.run_dir
        lines.append(f"| {label} | `{folder}` | {fmt_int(done)} / {fmt_int(run.config.get('steps'))} | "
                     f"{fmt(s.get('img_per_s'), 0)} | {fmt(s.get('wall_s'), 1)} | `{s.get('config_hash', '-')}` |")
    return lines + [""]
