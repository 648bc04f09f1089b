"""T(n): the first evaluated step at which the Real World's train error is at most a threshold.

The Deep Bootstrap paper (Nakkiran, Neyshabur, Sedghi, ICLR 2021, arXiv 2010.08127, Sec. 2) defines T(n)
as the step at which the Real World reaches ~1% train error; the threshold is configurable
(`--fit-threshold`). The trainer (for --stop-at-fit and summary.json) and the reports (runs without a
summary) both call `fit_step`, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEFAULT_FIT_THRESHOLD = 0.01  # the paper's T(n): Real World train error reaches 1%


def fit_step(rows: Iterable[dict[str, Any]], threshold: float) -> int | None:
    """T(n) from metrics rows in step order: the first step whose `train/error` is <= threshold, else None."""
    for row in rows:
        err = row.get("train/error")
        if err is not None and err <= threshold:
            return int(row["step"])
    return None
