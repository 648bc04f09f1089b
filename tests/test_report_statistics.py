"""Multi-seed statistics and the verdict's wording, on numbers small enough to compute by hand.

df = 2 (three seeds) has closed forms: CDF F(t) = 1/2 + t / (2 sqrt(2 + t^2)), 97.5% quantile 4.3027.
"""

import json
import math

import numpy as np
import pytest

from train.reporting.margin import Margin
from train.reporting.statistics import (
    SeedCurves,
    SeedStatistics,
    mean_sd,
    readout_indices,
    seed_statistics,
    time_averages,
    verdict,
)

STEPS = np.array([0, 10, 20, 40, 80])
REAL = np.array([[0.90, 0.60, 0.45, 0.40, 0.42], [0.90, 0.62, 0.47, 0.42, 0.44], [0.90, 0.58, 0.43, 0.38, 0.40]])
IDEAL = np.array([[0.90, 0.58, 0.44, 0.39, 0.30], [0.90, 0.60, 0.44, 0.40, 0.30], [0.90, 0.56, 0.44, 0.38, 0.30]])
TRAIN = np.tile([0.90, 0.40, 0.10, 0.05, 0.01], (3, 1))
Q975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t quantile (2a - 1) / sqrt(2 a (1 - a)), df 2: 4.3027


def cdf2(t: float) -> float:
    return 0.5 + t / (2 * math.sqrt(2 + t * t))


def curves(fit_steps=(40, 40, 40), rows=3, real=REAL, ideal=IDEAL, train=TRAIN):
    return SeedCurves(STEPS, real[:rows], ideal[:rows], train[:rows], tuple(fit_steps[:rows]), first_epoch_step=10)


def test_three_seeds_by_hand():
    st = seed_statistics(curves())
    # T(n) = 40 for all: the read-out is the evaluations at 20, 40, 80 (40 and one each side), the same for all
    assert st.at == "T(n)" and st.readout_steps == (20, 40, 80) and st.resolution == 20
    # Real per seed (.45 + .40 + .42) / 3 ...; Ideal (.44 + .39 + .30) / 3 ...: gaps .046667, .063333, .03
    assert st.per_seed_gap == pytest.approx([0.14 / 3, 0.19 / 3, 0.09 / 3])
    g = st.gap
    assert (g.mean, g.sd) == (pytest.approx(0.14 / 3), pytest.approx(0.05 / 3))
    se = 0.05 / 3 / math.sqrt(3)
    assert g.p_value == pytest.approx(2 * (1 - cdf2(0.14 / 3 / se)))  # 0.0400
    assert g.ci_low == pytest.approx(0.14 / 3 - Q975 * se)
    # generalisation gap: Real - train (train mean .16 / 3): .37, .39, .35; lower 95% bound .37 - 4.3027 .02/sqrt 3
    assert st.generalisation_gap.mean == pytest.approx(0.37) and st.generalisation_gap.sd == pytest.approx(0.02)
    low = 0.37 - Q975 * 0.02 / math.sqrt(3)
    assert st.generalisation_low == pytest.approx(low) and st.margin == pytest.approx(0.2 * low)
    # TOST: the upper test decides, t = (mean - margin) / SE = -1.81 -> p = 0.106: not equivalent
    assert g.tost_p == pytest.approx(cdf2((0.14 / 3 - 0.2 * low) / se)) and g.outcome == "differ"
    # time average over [10, 40] of each seed's signed gap (.02, .01, .01), (.02, .03, .02), (.02, -.01, 0)
    assert st.window == (10.0, 40.0)
    assert st.per_seed_time_avg == pytest.approx([0.35 / 30, 0.75 / 30, -0.05 / 30])
    assert st.time_avg.mean == pytest.approx(1.05 / 90)


def test_seeds_that_never_fit_are_reported_apart():
    st = seed_statistics(curves(fit_steps=(20, 40, None)))
    # median T(n) of the fitted seeds is 30: the nearest evaluation is 20 (first of the tie), so 10, 20, 40
    assert st.used == (0, 1) and st.fit_step.mean == pytest.approx(30) and st.readout_steps == (10, 20, 40)
    assert st.unfit_gap == ((2, pytest.approx(0.10)),)  # seed 2 at the end: .40 - .30
    assert st.gap.k == 2
    assert "1 seed(s) never fit and are reported apart" in verdict(st).text


def test_no_seed_fits_reads_at_end():
    st = seed_statistics(curves(fit_steps=(None, None, None)))
    assert st.at == "end" and st.readout_steps == (20, 40, 80) and st.used == (0, 1, 2)
    text = verdict(st).text
    assert text.startswith("Read at end (no seed's Real World reached the fit threshold") and "T(n) =" not in text


def test_one_seed_gives_no_verdict():
    st = seed_statistics(curves(rows=1))
    assert st.gap is None and st.time_avg is None and math.isnan(st.generalisation_low)
    judged = verdict(st)
    assert judged.code == "no-verdict" and "With one seed no verdict is possible" in judged.text
    assert "Run with --seeds 3 or more." in judged.text


def test_only_equivalence_reads_as_the_papers_claim():
    ideal = np.full((3, 5), 0.30)
    train = np.zeros((3, 5))
    close = ideal + np.array([[0.001], [-0.001], [0.0]])
    judged = verdict(seed_statistics(curves(real=close, ideal=ideal, train=train)))
    assert judged.code == "equivalent" and judged.text.endswith("as the Deep Bootstrap claims.")
    noisy = ideal + np.array([[0.02], [-0.03], [0.04]])
    judged = verdict(seed_statistics(curves(real=noisy, ideal=ideal, train=train)))
    assert judged.code == "inconclusive" and "Deep Bootstrap" not in judged.text
    assert "this is not evidence that the worlds agree" in judged.text


def test_absolute_margin_and_undefined_relative_margin():
    st = seed_statistics(curves(), Margin.parse("0.1"))
    assert st.margin == 0.1 and st.gap.outcome == "differ-within-margin"
    flat = seed_statistics(curves(train=REAL))  # train = test: no generalisation gap, no relative margin
    assert math.isnan(flat.margin) and math.isnan(flat.gap.tost_p)
    assert "which is undefined here" in verdict(flat).text


def test_statistics_round_trip_through_json():
    st = seed_statistics(curves(fit_steps=(20, 40, None)))
    back = SeedStatistics.from_dict(json.loads(json.dumps(st.to_dict())))
    assert back.to_dict() == st.to_dict() and verdict(back) == verdict(st)


def test_readout_stays_inside_the_grid_and_time_average_by_hand():
    assert list(readout_indices(STEPS, 0)) == [0, 1, 2] and list(readout_indices(STEPS, 80)) == [2, 3, 4]
    assert list(readout_indices(STEPS[:2], 80)) == [0, 1]
    avg = time_averages(STEPS, np.array([[0, 0.02, 0.01, 0.03, 0.12]]), 10, 30)
    # 30 interpolated between .01 (20) and .03 (40): .02; grid 10, 20, 30
    assert avg[0] == pytest.approx(((0.02 + 0.01) / 2 * 10 + (0.01 + 0.02) / 2 * 10) / 20)
    assert math.isnan(time_averages(STEPS, np.zeros((1, 5)), 50, 40)[0])


def test_mean_sd():
    two = mean_sd([1.0, 3.0, None, math.nan])
    assert (two.mean, two.sd, two.count) == (2.0, pytest.approx(math.sqrt(2)), 2)
    one = mean_sd([5.0])
    assert one.mean == 5.0 and math.isnan(one.sd) and one.count == 1
