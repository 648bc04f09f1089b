"""Paired t, TOST, the seed-and-test bootstrap, Holm/BH and planning, on numbers computed by hand.

With df = 2 the t distribution has closed forms (Student's t with 2 degrees of freedom):
CDF F(t) = 1/2 + t / (2 sqrt(2 + t^2)), quantile q(a) = (2a - 1) / sqrt(2 a (1 - a)).
"""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from train.errors import TrainError
from train.reporting.inference import (
    InferenceError,
    PairedInference,
    benjamini_hochberg,
    decimals_for,
    examples_needed,
    holm,
    paired_inference,
    seed_test_bootstrap,
    seed_test_interval,
    seeds_needed,
    tost_power,
)
from train.reporting.margin import Margin


def cdf2(t: float) -> float:
    return 0.5 + t / (2 * math.sqrt(2 + t * t))


def q2(a: float) -> float:
    return (2 * a - 1) / math.sqrt(2 * a * (1 - a))


def test_the_readme_headline_fails_a_paired_t_test():
    # mean -0.0110, sd 0.0060 over 3 seeds: SE = 0.006 / sqrt(3) = 0.0034641
    res = paired_inference([-0.017, -0.011, -0.005], margin=0.01)
    se = 0.006 / math.sqrt(3)
    assert (res.k, res.df) == (3, 2)
    assert (res.mean, res.sd, res.se) == (pytest.approx(-0.011), pytest.approx(0.006), pytest.approx(se))
    assert res.t == pytest.approx(-3.1754, abs=1e-4)
    assert res.p_value == pytest.approx(2 * (1 - cdf2(0.011 / se)))  # 0.0866
    assert res.p_value == pytest.approx(0.0865, abs=1e-4)  # 0.087 when read off t rounded to -3.18
    half = q2(0.975) * se  # 4.3027 * SE
    assert (res.ci_low, res.ci_high) == (pytest.approx(-0.011 - half), pytest.approx(-0.011 + half))
    assert (round(res.ci_low, 3), round(res.ci_high, 3)) == (-0.026, 0.004)
    # TOST against +-0.01: t_low = (-0.011 + 0.01) / SE = -0.2887 -> p = 1 - F(-0.2887) = 0.6
    assert res.tost_p == pytest.approx(1 - cdf2(-0.001 / se)) and res.tost_p == pytest.approx(0.6)
    assert res.outcome == "inconclusive"


def test_inconclusive_never_reads_as_agreement():
    text = paired_inference([-0.017, -0.011, -0.005], margin=0.01).describe("test soft-error")
    assert text == (
        "Real - Ideal test soft-error: mean -0.0110 over 3 seeds (sd 0.0060, SE 0.0035), 95% CI [-0.0259, "
        "+0.0039], paired t(2) = -3.18, p = 0.086; equivalence within ±0.0100: TOST p = 0.60. Inconclusive: the "
        "difference was neither shown to be non-zero nor shown to be within ±0.0100; this is not evidence that the worlds "
        "agree. More seeds (or a larger test set) are needed."
    )
    assert "Deep Bootstrap" not in text


def test_equivalent_within_margin():
    res = paired_inference([0.001, -0.001, 0.0], margin=0.01)
    se = 0.001 / math.sqrt(3)
    # both one-sided tests: t = (0 +- 0.01) / SE = +-17.32; p = 1 - F(17.32) = 0.00166
    assert res.tost_p == pytest.approx(1 - cdf2(0.01 / se)) and res.tost_p < 0.002
    assert res.p_value == pytest.approx(1.0) and res.outcome == "equivalent"
    assert "Equivalent within ±0.0100" in res.describe()  # SE 0.00058: four decimals


def test_differ_but_within_margin_and_differ():
    small = paired_inference([0.004, 0.005, 0.006], margin=0.01)
    se = 0.001 / math.sqrt(3)
    assert small.p_value == pytest.approx(2 * (1 - cdf2(0.005 / se)))  # 0.0131
    assert small.tost_p == pytest.approx(cdf2(-0.005 / se))  # the upper test, 0.0066
    assert small.ci_low > 0 and small.outcome == "differ-within-margin"
    large = paired_inference([0.020, 0.021, 0.022], margin=0.01)
    assert large.outcome == "differ" and large.tost_p > 0.5
    assert "The worlds differ: the CI excludes 0, and it was not shown to lie within ±0.0100." in large.describe()


def test_no_margin_means_no_equivalence_test():
    res = paired_inference([0.001, -0.001, 0.0], margin=math.nan)
    assert math.isnan(res.tost_p) and res.outcome == "inconclusive"
    assert "no margin was available" in res.describe()
    assert "Inconclusive: the difference was not shown to be non-zero;" in res.describe()


def test_record_round_trips_through_json_dict():
    res = paired_inference([0.001, -0.001, 0.0], margin=math.nan)
    data = res.to_dict()
    assert data["tost_p"] is None and data["outcome"] == "inconclusive"
    back = PairedInference.from_dict(data)
    assert back.outcome == res.outcome and math.isnan(back.margin) and back.mean == res.mean


@pytest.mark.parametrize(
    "diffs,margin,message",
    [
        ([0.01], 0.01, "at least 2 seeds"),
        ([0.01, math.nan], 0.01, "non-finite"),
        ([0.01, 0.02], -1.0, "must be > 0"),
    ],
)
def test_bad_input_is_one_clear_error(diffs, margin, message):
    with pytest.raises(InferenceError, match=message):
        paired_inference(diffs, margin)


def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 x4 = .02, .01 x3 = .03, .03 x2 = .06, .04 x1 = .04 -> running max .06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: .005 x4/1 = .02, .01 x4/2 = .02, .03 x4/3 = .04, .04 x4/4 = .04 (running min from the top)
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_bootstrap_of_a_constant_difference_has_no_width():
    real = np.full((3, 50), 0.3)
    out = seed_test_bootstrap(real, real - 0.01, draws=200, seed=0)
    assert (out.mean, out.ci_low, out.ci_high) == (pytest.approx(0.01),) * 3


def test_bootstrap_counts_seed_and_test_variance_and_keeps_the_pairing():
    rng = np.random.default_rng(0)
    k, n = 20, 2000
    a = rng.normal(0, 0.02, k)  # per-seed effect
    b = rng.normal(0, 0.30, n)  # per-example effect
    difficulty = rng.uniform(0, 1, n)  # shared by both worlds: must cancel in the paired difference
    ideal = np.tile(difficulty, (k, 1))
    real = ideal + a[:, None] + b[None, :]
    out = seed_test_bootstrap(real, ideal, draws=2000, seed=1)
    # the resampled mean is mean(a*) + mean(b*): variance var(a)/K + var(b)/N (population variances)
    half = 1.96 * math.sqrt(np.var(a) / k + np.var(b) / n)
    assert (out.ci_high - out.ci_low) / 2 == pytest.approx(half, rel=0.1)
    assert out.ci_low < a.mean() + b.mean() < out.ci_high
    assert seed_test_bootstrap(real, ideal, draws=2000, seed=1) == out  # seeded: the same interval


def test_seed_and_test_interval_by_hand():
    a = np.array([0.01, 0.02, 0.03])  # per-seed effects
    b = np.array([-0.1, 0.1, -0.2, 0.2])  # per-example effects (mean 0), shared by the seeds
    out = seed_test_interval(a[:, None] + b[None, :], np.zeros((3, 4)))
    v_seed, v_test = 0.0001 / 3, (0.1 / 3) / 4  # sample variances / K and / N
    df = (v_seed + v_test) ** 2 / (v_seed**2 / 2 + v_test**2 / 3)  # Welch-Satterthwaite: 3.024
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(v_seed + v_test)
    assert df == pytest.approx(3.024, abs=1e-3)
    assert (out.mean, out.ci_low, out.ci_high) == (
        pytest.approx(0.02),
        pytest.approx(0.02 - half),
        pytest.approx(0.02 + half),
    )
    # no test-set spread: the interval is the paired t-test's over the seed means
    flat = seed_test_interval(np.tile(a[:, None], (1, 4)), np.zeros((3, 4)))
    t = paired_inference(a, margin=math.nan)
    assert (flat.ci_low, flat.ci_high) == (pytest.approx(t.ci_low), pytest.approx(t.ci_high))
    with pytest.raises(InferenceError, match="seeds >= 2"):
        seed_test_interval(np.zeros((1, 4)), np.zeros((1, 4)))


def test_bootstrap_refuses_mismatched_shapes():
    with pytest.raises(InferenceError, match=r"\(seeds, test examples\)"):
        seed_test_bootstrap(np.zeros((2, 3)), np.zeros((2, 4)), draws=200, seed=0)


def test_tost_power_matches_a_seeded_simulation():
    rng = np.random.default_rng(0)
    k, sd, margin, gap = 8, 0.01, 0.01, 0.002
    d = rng.normal(gap, sd, (20000, k))
    res_p = [paired_inference(row, margin).tost_p for row in d[:2000]]
    simulated = float(np.mean(np.array(res_p) < 0.05))
    assert tost_power(sd, margin, k, gap) == pytest.approx(simulated, abs=0.03)


def test_seeds_needed_is_the_smallest_k_with_enough_power():
    k = seeds_needed(0.01, 0.01)
    assert tost_power(0.01, 0.01, k) >= 0.8 > tost_power(0.01, 0.01, k - 1)
    # large k: close to the normal formula ((z.95 + z.90) sd / margin)^2 = 8.564 (sd / margin)^2
    assert seeds_needed(0.05, 0.01) == pytest.approx(8.564 * 25, rel=0.02)
    # a true gap beyond the margin: the seeds to detect it with the two-sided t-test
    assert seeds_needed(0.01, 0.005, true_gap=0.01) == pytest.approx(10, abs=1)


def test_examples_needed_by_hand():
    # ((1.6449 + 1.2816) * 0.3 / 0.01)^2 = 7707.6
    assert examples_needed(0.3, 0.01) == 7708


def test_decimals_follow_the_standard_error():
    # one significant digit of the SE, two when its leading digits are 100-354
    assert [decimals_for(se) for se in (0.0095, 0.0035, 0.0036, 0.05, 0.012, 2.0, 0.0)] == [3, 4, 3, 2, 3, 1, 4]


def test_margin_parses_absolute_and_relative():
    assert Margin.parse("0.01") == Margin(0.01, False) and Margin.parse("20%") == Margin(0.2, True)
    assert Margin.parse("20%").resolve(0.05) == pytest.approx(0.01)
    assert math.isnan(Margin.parse("20%").resolve(-0.01)) and Margin.parse("0.01").resolve(math.nan) == 0.01
    assert Margin.from_dict(Margin.parse("20%").to_dict()) == Margin(0.2, True)
    for bad in ("0", "-1", "abc", "150%"):
        with pytest.raises(TrainError, match="--margin"):
            Margin.parse(bad)
