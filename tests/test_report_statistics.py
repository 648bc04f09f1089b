"""Multi-seed statistics and the verdict's wording, on numbers small enough to compute by hand."""
import math

import numpy as np
import pytest

from train.reporting.statistics import SeedCurves, mean_sd, pm, seed_statistics, verdict, window_gap

STEPS = np.array([0, 10, 20, 40, 80])
REAL = np.array([[0.90, 0.60, 0.45, 0.40, 0.42],
                 [0.90, 0.62, 0.47, 0.42, 0.44],
                 [0.90, 0.58, 0.43, 0.38, 0.40]])
IDEAL = np.array([[0.90, 0.58, 0.44, 0.39, 0.30],
                  [0.90, 0.60, 0.44, 0.40, 0.30],
                  [0.90, 0.56, 0.44, 0.38, 0.30]])
TRAIN = np.tile([0.90, 0.40, 0.10, 0.05, 0.01], (3, 1))


def curves(fit_steps=(40, 40, 40), rows=3):
    return SeedCurves(STEPS, REAL[:rows], IDEAL[:rows], TRAIN[:rows], tuple(fit_steps[:rows]), first_epoch_step=10)


def test_three_seeds_by_hand():
    st = seed_statistics(curves())
    assert st["seeds"] == 3 and st["fitted"] == 3 and st["ref_step"] == 40
    # gaps at T(n) = 40: .40-.39, .42-.40, .38-.38 = .01, .02, .00 -> mean .01, sample sd .01
    assert st["per_seed_gap"] == pytest.approx([0.01, 0.02, 0.0])
    assert (st["gap"]["mean"], st["gap"]["sd"]) == (pytest.approx(0.01), pytest.approx(0.01))
    # each world across seeds at step 40: Real .40, .42, .38 (sd .02), Ideal .39, .40, .38 (sd .01)
    assert st["noise_real"] == pytest.approx(0.02) and st["noise_ideal"] == pytest.approx(0.01)
    assert st["noise_floor"] == pytest.approx(0.02)
    # Real test - train at 40: .35, .37, .33
    assert st["generalisation_gap"]["mean"] == pytest.approx(0.35)
    assert st["generalisation_gap"]["sd"] == pytest.approx(0.02)
    # seed-averaged gap curve: 0, .02, .01, .01, .12; window [10, 40] holds steps 10, 20, 40 (the .12 at
    # step 80 is after T(n), the step 0 before the first epoch ends)
    w = st["window"]
    assert (w["start"], w["end"], w["max_abs"], w["max_step"]) == (10, 40, pytest.approx(0.02), 10)
    # time average: (.02 + .01) / 2 * 10 + (.01 + .01) / 2 * 20 = .35 over 30 steps
    assert w["mean_abs"] == pytest.approx(0.35 / 30)


def test_seeds_with_their_own_fit_steps():
    st = seed_statistics(curves(fit_steps=(20, 40, None)))
    # seed 2 never fit: read at the last step, 80; the seed-averaged T(n) is (20 + 40 + 80) / 3
    assert st["fitted"] == 2 and st["fit_step"]["mean"] == pytest.approx(30)
    assert st["ref_step"] == pytest.approx(140 / 3)
    assert st["per_seed_gap"] == pytest.approx([0.45 - 0.44, 0.42 - 0.40, 0.40 - 0.30])


def test_window_ends_between_steps_and_empty_window():
    w = window_gap(STEPS, np.array([0, 0.02, 0.01, 0.03, 0.12]), 10, 30)
    # |gap| at 30 interpolated between .01 (20) and .03 (40): .02; grid 10, 20, 30
    assert w["max_abs"] == pytest.approx(0.02) and w["max_step"] == 10
    assert w["mean_abs"] == pytest.approx(((0.02 + 0.01) / 2 * 10 + (0.01 + 0.02) / 2 * 10) / 20)
    empty = window_gap(STEPS, np.zeros(5), 50, 40)  # T(n) inside the first epoch: no window
    assert math.isnan(empty["max_abs"]) and empty["max_step"] is None


def test_one_seed_gives_no_verdict():
    st = seed_statistics(curves(rows=1))
    assert st["seeds"] == 1 and math.isnan(st["noise_floor"]) and math.isnan(st["gap"]["sd"])
    judged = verdict(st)
    assert judged["code"] == "no-verdict"
    assert judged["text"] == (
        "The gap in test soft-error at T(n) (Real - Ideal) is +0.0100 over 1 seed; the Real World's "
        "generalisation gap (test - train) there is +0.3500. With one seed no verdict is possible: the "
        "seed-to-seed noise is unknown, and a second seed can move either world by as much as such a gap. "
        "Run with --seeds 3 or more.")


def test_gap_within_noise_is_worded_with_its_numbers():
    judged = verdict(seed_statistics(curves()))
    assert judged["code"] == "within-noise"
    assert judged["text"] == (
        "The gap in test soft-error at T(n) (Real - Ideal) is +0.0100 ± 0.0100 over 3 seeds; the Real World's "
        "generalisation gap (test - train) there is +0.3500 ± 0.0200. The noise floor (sd across seeds at the "
        "same step, T(n) = 40) is 0.0200 (Real 0.0200, Ideal 0.0100). |gap| 0.0100 is within the noise floor "
        "0.0200 while the generalisation gap 0.3500 is above it: Real and Ideal cannot be told apart at T(n), "
        "as the Deep Bootstrap claims.")


def stats(gap, noise, gen, seeds=3):
    return {"seeds": seeds, "ref_step": 500.0, "gap": {"mean": gap, "sd": 0.01},
            "generalisation_gap": {"mean": gen, "sd": 0.01}, "noise_floor": noise, "noise_real": noise,
            "noise_ideal": noise / 2}


@pytest.mark.parametrize("gap, noise, gen, code, words", [
    (-0.05, 0.02, 0.20, "below-generalisation-gap",
     "|gap| 0.0500 is above the noise floor 0.0200, so the worlds differ, but it is 25% of the generalisation "
     "gap 0.2000: the Ideal World predicts the Real World's test error better than its train error does."),
    (0.30, 0.02, 0.20, "not-small",
     "|gap| 0.3000 is above the noise floor 0.0200 and at least as large as the generalisation gap 0.2000: "
     "here the Real World does not track the Ideal World."),
    (0.01, 0.05, 0.03, "unresolved",
     "|gap| 0.0100 is within the noise floor, but so is the generalisation gap 0.0300: at this scale the "
     "experiment cannot tell the claim apart from noise."),
])
def test_verdict_codes_and_words(gap, noise, gen, code, words):
    judged = verdict(stats(gap, noise, gen), metric="test error")
    assert judged["code"] == code
    assert judged["text"].startswith(f"The gap in test error at T(n) (Real - Ideal) is {gap:+.4f} ± 0.0100 over 3 seeds")
    assert "T(n) = 500" in judged["text"] and judged["text"].endswith(words)


def test_mean_sd_and_pm():
    assert mean_sd([1.0, 3.0, None, math.nan]) == (2.0, pytest.approx(math.sqrt(2)), 2)
    mean, sd, count = mean_sd([5.0])
    assert mean == 5.0 and math.isnan(sd) and count == 1
    assert pm({"mean": 0.25, "sd": 0.015}) == "0.2500 ± 0.0150"
    assert pm({"mean": -0.25, "sd": math.nan}, sign=True) == "-0.2500"
    assert pm({"mean": None, "sd": None}) == "n/a"
