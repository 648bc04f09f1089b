"""Seed and test-set planning from a pilot experiment's measured spread, at a given power.

    python -m train bootstrap --plan out/runs/pilot --margin 20%     # prints the plan, trains nothing

From a finished (or partly finished) bootstrap folder with >= 2 seeds: the sd of the paired per-seed gaps
(test soft-error at the read-out) and, where the runs kept per-example test outputs, the sd of the
per-example paired differences. `inference.seeds_needed` and `inference.examples_needed` turn them into
the seeds and test examples the margin needs at 80% power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from train.errors import TrainError
from train.reporting.inference import (
    InferenceError,
    decimals_for,
    examples_needed,
    seeds_needed,
    seeds_to_detect,
    tost_power,
)
from train.reporting.statistics import SeedStatistics
from train.run import test_outputs

POWER = 0.8


@dataclass(frozen=True)
class Plan:
    """Seeds and test examples a margin needs, from a pilot's sds (nan/None where not measurable)."""

    pilot_seeds: int
    sd_of_gaps: float
    observed_gap: float
    margin: float
    margin_text: str
    power: float
    seeds_for_equivalence: int | None  # if the true gap is 0
    seeds_for_observed_gap: int | None  # to tell the observed mean gap from 0 (paired t-test)
    example_sd: float
    test_examples: int | None  # for the test set alone to allow equivalence at no true gap
    test_examples_now: int | None
    power_now: float  # this design's power (its seeds) to show equivalence at no true gap

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        d = decimals_for(self.sd_of_gaps / math.sqrt(self.pilot_seeds))
        head = (
            f"From {self.pilot_seeds} pilot seeds: sd of the paired gap {self.sd_of_gaps:.{d}f}, mean "
            f"{self.observed_gap:+.{d}f}; margin {self.margin_text}"
            + (f" = ±{self.margin:.{d}f}." if math.isfinite(self.margin) else ", undefined here.")
        )
        if not math.isfinite(self.margin):
            return head + " No plan for equivalence is possible without a margin; give an absolute --margin."
        parts = [
            f"At the measured sd, its {self.pilot_seeds} seeds had {self.power_now:.0%} power to show "
            f"equivalence within the margin at no true gap. At {self.power:.0%} power and alpha 0.05: "
            f"{self.seeds_for_equivalence} seeds show equivalence within the margin if the true gap is 0"
        ]
        if self.seeds_for_observed_gap is not None:
            parts.append(
                f"{self.seeds_for_observed_gap} seeds tell a true gap of the observed size "
                f"({self.observed_gap:+.{d}f}) from 0"
            )
        if self.test_examples is not None:
            parts.append(
                f"the test set's own sampling error (per-example sd {self.example_sd:.2f}) allows "
                f"equivalence with {self.test_examples:,} test examples or more "
                f"(this pilot evaluated {self.test_examples_now:,})"
            )
        else:
            parts.append("the test-set size cannot be planned: the pilot kept no per-example test outputs")
        return head + " " + "; ".join(parts) + "."


def example_sd(pairs, st: SeedStatistics) -> float:
    """sd over test examples of the paired per-example soft-error difference, averaged over the read-out
    steps and the seeds in the inference; nan without kept outputs."""
    diffs = []
    for i in st.used:
        real, ideal = (test_outputs.load(pairs[i][w].run_dir, st.readout_steps, "soft_error") for w in (0, 1))
        if real is None or ideal is None or real.shape != ideal.shape:
            return math.nan
        diffs.append((real - ideal).mean(axis=0))
    return float(np.std(np.mean(diffs, axis=0), ddof=1))


def make_plan(pairs, st: SeedStatistics, power: float = POWER) -> Plan:
    """The plan from the pilot's statistics of test soft-error (`st`, with its margin resolved)."""
    if st.gap is None:
        raise TrainError(
            f"the pilot has {len(st.used)} usable seed(s): planning needs the spread of at least 2 "
            "(seeds whose Real World fit); run the pilot with --seeds 3 or more"
        )
    margin, sd, gap = st.margin, st.gap.sd, st.gap.mean
    ex_sd = example_sd(pairs, st)
    count = pairs[0][0].rows[-1].get("test/count")
    try:
        eq = seeds_needed(sd, margin, power=power) if math.isfinite(margin) else None
        observed = seeds_to_detect(sd, gap, power=power) if gap != 0 else None
        examples = examples_needed(ex_sd, margin, power) if math.isfinite(margin) and math.isfinite(ex_sd) else None
    except InferenceError as exc:
        raise TrainError(f"planning from the pilot: {exc}") from None
    now = tost_power(sd, margin, len(st.used)) if math.isfinite(margin) and sd > 0 else math.nan
    return Plan(len(st.used), sd, gap, margin, st.margin_text, power, eq, observed, ex_sd, examples, count, now)
