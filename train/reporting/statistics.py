"""Multi-seed statistics of Real vs Ideal, and the verdict they support: pure functions of arrays.

Given K seeds of one comparison (seed s: a Real run and an Ideal run sharing an init), on common
evaluation steps:
- gap at T(n): Real - Ideal test metric of each seed at its own T(n), as mean +- sd over seeds;
- noise floor: the seed-to-seed sd of each world's test metric at the same step (the seed-averaged
  T(n)); the larger of the two is the floor a gap must clear to be told apart from seed noise;
- generalisation gap at T(n): Real test - Real train metric of each seed at its T(n), mean +- sd;
- over t in [n / batch, T(n)] on the seed-averaged curves: the largest |gap| and its time average
  (trapezoid rule over steps). The first epoch is left out: before step n / batch the Real World has
  not yet seen a sample twice, so the two worlds are the same random process (Nakkiran et al. 2021,
  "The Deep Bootstrap", Sec. 2) and any gap there is noise.

The verdict (`verdict`) compares |mean gap| with the noise floor and with the generalisation gap; with
one seed the noise is unknown and it says so. The bootstrap and the sweep reports both call it.

    stats = seed_statistics(SeedCurves(steps, real, ideal, real_train, fit_steps, first_epoch_step=8))
    verdict(stats)["text"]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedCurves:
    """One metric of K seeds on S common steps (rows = seeds, in the same order everywhere)."""

    steps: np.ndarray  # (S,) evaluated steps, increasing
    real: np.ndarray  # (K, S) Real World test metric
    ideal: np.ndarray  # (K, S) Ideal World test metric
    real_train: np.ndarray  # (K, S) Real World train metric
    fit_steps: tuple  # (K,) T(n) of each seed; None where the Real World never fit
    first_epoch_step: float  # n / batch: the step at which the Real World starts its second epoch


def mean_sd(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof 1; nan for one value) and count of the finite values."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan, 0
    sd = float(np.std(arr, ddof=1)) if len(arr) > 1 else math.nan
    return float(np.mean(arr)), sd, len(arr)


def _stat(values) -> dict:
    mean, sd, count = mean_sd(values)
    return {"mean": mean, "sd": sd, "count": count}


def at_steps(steps: np.ndarray, curves: np.ndarray, where) -> np.ndarray:
    """Each seed's curve (row) read at its own step in `where` (a scalar applies to every seed)."""
    where = np.broadcast_to(np.asarray(where, dtype=float), (len(curves),))
    return np.array([np.interp(w, steps, row) for w, row in zip(where, curves)])


def window_gap(steps: np.ndarray, gap: np.ndarray, start: float, end: float) -> dict:
    """Largest |gap| (and its step) and the time-averaged |gap| over [start, end], interpolating the ends."""
    if not end > start:
        return {"start": start, "end": end, "max_abs": math.nan, "max_step": None, "mean_abs": math.nan}
    inside = steps[(steps > start) & (steps < end)]
    grid = np.concatenate([[start], inside, [end]]).astype(float)
    values = np.abs(np.interp(grid, steps, gap))
    worst = int(np.argmax(values))
    # Trapezoid rule by hand: numpy renamed trapz to trapezoid (2.0); this works with both.
    area = float(np.sum((values[1:] + values[:-1]) * np.diff(grid)) / 2)
    return {"start": start, "end": end, "max_abs": float(values[worst]), "max_step": float(grid[worst]),
            "mean_abs": area / (end - start)}


def seed_statistics(c: SeedCurves) -> dict:
    """Gap, noise floor, generalisation gap and window figures of K seeds (see the module docstring).

    A seed whose Real World never fit is read at the last common step.
    """
    last = float(c.steps[-1])
    ref = np.array([last if f is None else min(float(f), last) for f in c.fit_steps])
    real_at, ideal_at = at_steps(c.steps, c.real, ref), at_steps(c.steps, c.ideal, ref)
    train_at = at_steps(c.steps, c.real_train, ref)
    t_ref = float(np.mean(ref))  # the seed-averaged T(n)
    noise_real = _stat(at_steps(c.steps, c.real, t_ref))["sd"]
    noise_ideal = _stat(at_steps(c.steps, c.ideal, t_ref))["sd"]
    mean_gap_curve = c.real.mean(axis=0) - c.ideal.mean(axis=0)
    return {
        "seeds": len(c.real),
        "fitted": sum(f is not None for f in c.fit_steps),
        "fit_step": _stat([f for f in c.fit_steps if f is not None]),
        "ref_step": t_ref,
        "real": _stat(real_at),
        "ideal": _stat(ideal_at),
        "gap": _stat(real_at - ideal_at),
        "per_seed_gap": [float(g) for g in real_at - ideal_at],
        "noise_real": noise_real,
        "noise_ideal": noise_ideal,
        "noise_floor": max(noise_real, noise_ideal) if len(c.real) > 1 else math.nan,
        "generalisation_gap": _stat(real_at - train_at),
        "window": window_gap(c.steps, mean_gap_curve, float(c.first_epoch_step), t_ref),
    }


def verdict(stats: dict, metric: str = "test soft-error") -> dict:
    """{"code", "text"}: what the numbers support, in words that name the numbers compared.

    codes: "no-verdict" (one seed), "within-noise", "unresolved" (within noise, but so is the
    generalisation gap), "below-generalisation-gap" (beyond noise, smaller than the generalisation gap),
    "not-small" (at least as large as the generalisation gap).
    """
    gap, gen, noise = stats["gap"]["mean"], stats["generalisation_gap"]["mean"], stats["noise_floor"]
    k = stats["seeds"]
    size = (f"The gap in {metric} at T(n) (Real - Ideal) is {pm(stats['gap'], sign=True)} over {k} "
            f"seed{'s' if k != 1 else ''}; the Real World's generalisation gap (test - train) there is "
            f"{pm(stats['generalisation_gap'], sign=True)}.")
    if k < 2 or not math.isfinite(noise):
        return {"code": "no-verdict", "text": size + " With one seed no verdict is possible: the seed-to-seed "
                "noise is unknown, and a second seed can move either world by as much as such a gap. Run "
                "with --seeds 3 or more."}
    floor = (f"The noise floor (sd across seeds at the same step, T(n) = {stats['ref_step']:,.0f}) is "
             f"{noise:.4f} (Real {stats['noise_real']:.4f}, Ideal {stats['noise_ideal']:.4f}).")
    g = abs(gap)
    if g <= noise and gen <= noise:
        code, text = "unresolved", (f"|gap| {g:.4f} is within the noise floor, but so is the generalisation gap "
                                    f"{gen:.4f}: at this scale the experiment cannot tell the claim apart from noise.")
    elif g <= noise:
        code, text = "within-noise", (f"|gap| {g:.4f} is within the noise floor {noise:.4f} while the "
                                      f"generalisation gap {gen:.4f} is above it: Real and Ideal cannot be told "
                                      f"apart at T(n), as the Deep Bootstrap claims.")
    elif g < gen:
        code, text = "below-generalisation-gap", (
            f"|gap| {g:.4f} is above the noise floor {noise:.4f}, so the worlds differ, but it is "
            f"{g / gen:.0%} of the generalisation gap {gen:.4f}: the Ideal World predicts the Real World's "
            "test error better than its train error does.")
    else:
        code, text = "not-small", (f"|gap| {g:.4f} is above the noise floor {noise:.4f} and at least as large as "
                                   f"the generalisation gap {gen:.4f}: here the Real World does not track the "
                                   "Ideal World.")
    return {"code": code, "text": " ".join([size, floor, text])}


def pm(stat: dict, digits: int = 4, sign: bool = False) -> str:
    """`mean ± sd` of a {mean, sd} dict; the sd is left out when undefined (one seed)."""
    mean, sd = stat["mean"], stat["sd"]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text + ("" if sd is None or not math.isfinite(sd) else f" ± {sd:.{digits}f}")
