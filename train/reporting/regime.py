"""Checks on the regime a comparison runs in, for generated datasets: how ambiguous are its labels?

A labeler that is unsure of many images makes soft-error gaps measure memorising ambiguous labels more
than the online-vs-offline effect the Deep Bootstrap is about. Two checks, where the data record them:
- low-confidence rate per split: the share of images whose labeler top probability is below
  LOW_CONFIDENCE, from the per-shard confidence histograms a generated dataset keeps in `.shards/`;
- the student's error ratio: the Real World's test error on the (synthetic) test split over its error on
  each `--extra-test` set (e.g. real images), at the read-out. Far above 1, the synthetic labels are harder
  (noisier) than the real ones.
Labeler disagreement (two labelers of equal accuracy) is not recorded in a dataset, so it is not checked here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shards.errors import ShardsError
from shards.jsonio import read_json

LOW_CONFIDENCE = 0.9  # a top probability below 0.9: the labeler gives another class >= 10%


@dataclass(frozen=True)
class RegimeChecks:
    low_confidence: dict  # split -> share of images with labeler top probability < LOW_CONFIDENCE
    error_ratio: dict  # extra test set -> Real test error on the test split / on that set

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RegimeChecks:
        return cls(dict(data["low_confidence"]), dict(data["error_ratio"]))

    def describe(self) -> str:
        parts = [
            f"the labeler's top probability is below {LOW_CONFIDENCE:g} on {share:.1%} of the {split} images"
            for split, share in sorted(self.low_confidence.items())
        ]
        parts += [
            f"the Real World's test error on the test split is {ratio:.1f} times its error on {name}"
            for name, ratio in sorted(self.error_ratio.items())
            if math.isfinite(ratio)
        ]
        if not parts:
            return ""
        return (
            "Regime checks: " + "; ".join(parts) + ". Many ambiguous labels make the soft-error gap measure "
            "the memorising of ambiguous labels more than online-vs-offline training; the hard-error and "
            "loss gaps in the table below are the cross-check."
        )


def low_confidence_rates(data: str | Path | None) -> dict:
    """{split: share below LOW_CONFIDENCE} from a local generated dataset's shard stats; {} otherwise."""
    folder = Path(str(data)) / ".shards" if data else None
    if folder is None or not folder.is_dir():
        return {}
    counts: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            stats = read_json(path)
        except ShardsError:
            continue
        hist = (stats.get("extra") or {}).get("max_prob_hist") if isinstance(stats, dict) else None
        if hist:
            split = stats.get("split", "?")
            counts[split] = counts.get(split, np.zeros(len(hist))) + np.asarray(hist, dtype=float)
    rates = {}
    for split, hist in counts.items():
        upper = np.linspace(0, 1, len(hist) + 1)[1:]
        if hist.sum() > 0:
            rates[split] = float(hist[upper <= LOW_CONFIDENCE + 1e-9].sum() / hist.sum())
    return rates


def regime_checks(data, stats: dict) -> RegimeChecks:
    """The checks for one comparison: `stats` is {set: {metric: SeedStatistics}} of the bootstrap report."""
    test_error = stats["test"]["error"].real.mean if "error" in stats["test"] else math.nan
    ratios = {
        name: test_error / m["error"].real.mean
        for name, m in stats.items()
        if name != "test" and "error" in m and m["error"].real.mean > 0
    }
    return RegimeChecks(low_confidence_rates(data), ratios)
