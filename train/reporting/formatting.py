"""Number formats and the tables every report shares (ledger, runs).

The run, bootstrap and sweep reports all import these, so they never import each other.
"""

from __future__ import annotations

import math
from pathlib import Path

from train.reporting.inference import decimals_for
from train.reporting.results import RunRecord
from train.run.summary import RunSummary


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_gap(value, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def fmt_se(value, se, sign: bool = False) -> str:
    """`value` rounded to what its standard error supports (its first significant digit)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:{'+' if sign else ''}.{decimals_for(se)}f}"


def fmt_ci(low, high, se) -> str:
    """`[low, high]` at the precision the standard error supports."""
    return f"[{fmt_se(low, se, True)}, {fmt_se(high, se, True)}]"


def sampling_se(rate, count) -> float:
    """Sampling SE of a rate in [0, 1] over `count` test examples: sqrt(p (1 - p) / N), exact for the error
    (binomial) and an upper bound for the soft-error (a [0, 1] variable with mean p has variance <= p (1 - p))."""
    if rate is None or not count or not math.isfinite(rate):
        return math.nan
    return math.sqrt(max(rate * (1 - rate), 0.0) / count)


def fmt_int(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{round(value):,}"


def ledger_table(runs: list[tuple[str, RunRecord]]) -> list[str]:
    lines = [
        "## Sample ledger",
        "",
        "| run | unique samples | total draws | pool size | passes | no reuse | within subset | subset hash |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, run in runs:
        led = (run.summary or {}).get("ledger")
        if not led:
            lines.append(f"| {label} | run not finished | | | | | | |")
            continue
        passes = led.get("passes")
        lines.append(
            f"| {label} | {fmt_int(led.get('unique_samples'))} | {fmt_int(led.get('total_draws'))} | "
            f"{fmt_int(led.get('pool_size'))} | {fmt(passes, 3) if passes is not None else 'n/a'} | "
            f"{led.get('no_reuse')} | {led.get('within_subset', '-')} | `{led.get('subset_hash') or '-'}` |"
        )
    return lines + [
        "",
        "Passes are over the n-subset for Real (many expected) and over the pool for Ideal, which must show no reuse.",
        "",
    ]


def runs_table(base: Path, runs: list[tuple[str, RunRecord]]) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| run | folder | steps done | img/s | wall time (s) | config hash |",
        "|---|---|---|---|---|---|",
    ]
    for label, run in runs:
        s = run.summary or {}
        done = s.get("steps_done", run.last_step())
        folder = run.run_dir.relative_to(base).as_posix() if run.run_dir.is_relative_to(base) else run.run_dir
        lines.append(
            f"| {label} | `{folder}` | {fmt_int(done)} / {fmt_int(run.config.get('steps'))} | "
            f"{fmt(s.get('img_per_s'), 0)} | {fmt(s.get('wall_s'), 1)} | `{s.get('config_hash', '-')}` |"
        )
    return lines + [""]


def provenance_notes(runs: list[RunRecord]) -> list[str]:
    """A sentence for each provenance the finished runs of one comparison do not share (packed and unpacked,
    devices, torch versions): each is another float path, and SGD amplifies float differences."""
    summaries = [RunSummary.from_dict(run.summary) for run in runs if run.summary]
    packs = {s.pack_size for s in summaries if s.pack_size is not None}
    mixed = {
        "packed and unpacked runs": sorted(f"pack size {p}" for p in packs) if 1 in packs and len(packs) > 1 else [],
        "devices": sorted({s.device for s in summaries if s.device}),
        "torch versions": sorted({s.torch_version for s in summaries if s.torch_version}),
    }
    return [
        f"This comparison mixes {label} ({', '.join(values)}): their float paths differ, so their runs agree "
        "only in distribution, and a paired gap may carry that difference."
        for label, values in mixed.items()
        if len(values) > 1
    ]
