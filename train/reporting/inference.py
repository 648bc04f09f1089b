"""Statistical inference on paired Real - Ideal differences: pure functions of arrays.

Seed s trains a Real and an Ideal run from one init, so the unit of evidence is the paired difference
d_s = Real_s - Ideal_s (Student's paired t, e.g. NIST/SEMATECH e-Handbook 7.3.1). On K such differences:
- `paired_inference`: mean, SE = sd / sqrt(K), the t-quantile 95% CI, the two-sided paired p-value, and an
  equivalence test against a margin declared before the run (TOST: two one-sided t-tests against -margin
  and +margin, Schuirmann 1987, J. Pharmacokinet. Biopharm. 15:657); four outcomes.
- `seed_test_interval`, `seed_test_bootstrap`: a CI that also counts the shared test set's sampling error,
  from the seed and test-set variance components, or by resampling seeds and test examples together (a
  two-way paired bootstrap over the (K, N) per-example differences; too narrow at small K).
- `holm`, `benjamini_hochberg`: adjusted p-values for many comparisons (Holm 1979, Scand. J. Stat. 6:65;
  Benjamini & Hochberg 1995, JRSS B 57:289).
- `seeds_needed`, `seeds_to_detect`, `examples_needed`: planning at a given power.

    res = paired_inference([-0.017, -0.011, -0.005], margin=0.01)
    res.outcome, res.describe("test soft-error")

t and noncentral-t quantiles come from scipy.stats (scipy is a dependency of the toolkit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from train.errors import TrainError

OUTCOMES = ("differ", "equivalent", "differ-within-margin", "inconclusive")


class InferenceError(TrainError):
    """Too little or malformed data for a test (one seed, non-finite values, a bad margin)."""


def decimals_for(se: float, most: int = 6) -> int:
    """Decimal places a figure with standard error `se` supports, by the Particle Data Group's rule
    (Review of Particle Physics, Introduction, "Rounding"): the SE to two significant digits when its three
    leading digits are 100-354, else to one; 4 when the SE is unknown or 0."""
    if se is None or not math.isfinite(se) or se <= 0:
        return 4
    exponent = math.floor(math.log10(se))
    leading = round(se / 10 ** (exponent - 2))  # the SE's three leading digits, 100-999
    return int(min(most, max(0, -exponent + (1 if leading <= 354 else 0))))


def _num(value: float, digits: int, sign: bool = False) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{'+' if sign else ''}.{digits}f}"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.2g}" if value < 0.1 else f"{value:.2f}"


@dataclass(frozen=True)
class PairedInference:
    """A paired t-test and TOST on K per-seed differences (Real - Ideal)."""

    k: int
    mean: float
    sd: float
    se: float
    df: int
    ci_low: float
    ci_high: float
    p_value: float
    margin: float  # nan: no margin could be declared, so no equivalence test
    tost_p: float  # nan without a margin
    outcome: str
    alpha: float = 0.05

    @property
    def t(self) -> float:
        return self.mean / self.se if self.se > 0 else math.copysign(math.inf, self.mean) if self.mean else 0.0

    def to_dict(self) -> dict:
        return {key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> PairedInference:
        floats = ("mean", "sd", "se", "ci_low", "ci_high", "p_value", "margin", "tost_p", "alpha")
        kwargs: dict[str, Any] = {
            key: (math.nan if key in floats and data.get(key) is None else data[key])
            for key in cls.__dataclass_fields__
            if key in data
        }
        return cls(**kwargs)

    def describe(self, metric: str = "test soft-error") -> str:
        """One paragraph with the numbers; inconclusive never reads as evidence of equality."""
        d = decimals_for(self.se)
        level = f"{1 - self.alpha:.0%}"
        head = (
            f"Real - Ideal {metric}: mean {_num(self.mean, d, True)} over {self.k} seeds "
            f"(sd {_num(self.sd, d)}, SE {_num(self.se, d)}), {level} CI [{_num(self.ci_low, d, True)}, "
            f"{_num(self.ci_high, d, True)}], paired t({self.df}) = {self.t:.2f}, p = {_p(self.p_value)}"
        )
        if math.isfinite(self.margin):
            head += f"; equivalence within ±{_num(self.margin, d)}: TOST p = {_p(self.tost_p)}."
        else:
            head += "; no margin was available, so equivalence was not tested."
        return f"{head} {self._conclusion(d)}"

    def _conclusion(self, d: int) -> str:
        margin = _num(self.margin, d)
        if self.outcome == "differ":
            tail = f", and it was not shown to lie within ±{margin}" if math.isfinite(self.margin) else ""
            return f"The worlds differ: the CI excludes 0{tail}."
        if self.outcome == "differ-within-margin":
            return (
                f"The worlds differ (the CI excludes 0), but by less than the declared margin ±{margin} "
                "(equivalence shown)."
            )
        if self.outcome == "equivalent":
            return f"Equivalent within ±{margin}: the difference was shown to be smaller than the declared margin."
        shown = (
            f"neither shown to be non-zero nor shown to be within ±{margin}"
            if math.isfinite(self.margin)
            else "not shown to be non-zero"
        )
        return (
            f"Inconclusive: the difference was {shown}; this is not evidence that the worlds agree. More "
            "seeds (or a larger test set) are needed."
        )


def outcome_of(p_value: float, tost_p: float, alpha: float = 0.05) -> str:
    """One of OUTCOMES from the two tests' p-values (p < alpha is the same as the 1 - alpha CI excluding 0)."""
    differs = p_value < alpha
    equivalent = math.isfinite(tost_p) and tost_p < alpha
    if differs:
        return "differ-within-margin" if equivalent else "differ"
    return "equivalent" if equivalent else "inconclusive"


def _finite(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.size and not np.isfinite(arr).all():
        raise InferenceError(
            f"{what}: non-finite values {arr[~np.isfinite(arr)][:3].tolist()}; every seed "
            "needs a number at the read-out"
        )
    return arr


def paired_inference(diffs, margin: float, alpha: float = 0.05) -> PairedInference:
    """Paired t-test (two-sided) and TOST against ±margin on per-seed differences.

    Args:
        diffs: K >= 2 per-seed differences Real - Ideal.
        margin: equivalence margin (> 0), declared before the run; nan for none (no TOST).
        alpha: level of both tests; the CI has coverage 1 - alpha.
    """
    d = _finite(diffs, "paired differences").ravel()
    if len(d) < 2:
        raise InferenceError(
            f"{len(d)} paired difference(s): a paired test needs at least 2 seeds; run with --seeds 3 or more"
        )
    if not (margin is None or math.isnan(margin) or margin > 0):
        raise InferenceError(f"margin {margin}: must be > 0 (or undefined)")
    if not 0 < alpha < 0.5:
        raise InferenceError(f"alpha {alpha}: must be in (0, 0.5)")
    margin = math.nan if margin is None else float(margin)
    k, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    se, df = sd / math.sqrt(k), k - 1
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    if se > 0:
        p_value = float(2 * stats.t.sf(abs(mean) / se, df))
        # TOST: H0 mean <= -margin (reject when t_low large) and H0 mean >= +margin; p = the larger.
        tost_p = (
            max(float(stats.t.sf((mean + margin) / se, df)), float(stats.t.cdf((mean - margin) / se, df)))
            if math.isfinite(margin)
            else math.nan
        )
    else:  # identical differences: no spread, so each test is decided by the mean alone
        p_value = 1.0 if mean == 0 else 0.0
        tost_p = (0.0 if abs(mean) < margin else 1.0) if math.isfinite(margin) else math.nan
    ci_low, ci_high = mean - half, mean + half
    return PairedInference(
        k, mean, sd, se, df, ci_low, ci_high, p_value, margin, tost_p, outcome_of(p_value, tost_p, alpha), alpha
    )


@dataclass(frozen=True)
class BootstrapInterval:
    """A percentile bootstrap CI of the mean difference over seeds and test examples."""

    mean: float
    ci_low: float
    ci_high: float
    seeds: int
    examples: int
    draws: int
    seed: int
    level: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BootstrapInterval:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def seed_test_bootstrap(
    real, ideal, draws: int = 2000, seed: int = 0, level: float = 0.95, chunk: int = 256
) -> BootstrapInterval:
    """CI of mean(Real - Ideal) resampling seeds and test examples together.

    `real`, `ideal`: (K seeds, N test examples) per-example values (e.g. soft-error 1 - p_label) at the
    read-out. Each draw takes K seeds and N examples with replacement and averages the paired differences
    over the chosen (seed, example) cells; Real and Ideal are always resampled together, so the pairing by
    seed and by example is kept. Counts as weights: mean = w_seed @ D @ w_example / (K N).
    With few seeds its seed part is too narrow (resampling K values shrinks their variance by (K - 1) / K,
    and the tails are normal, not t): reports use `seed_test_interval`.
    """
    real, ideal = _finite(real, "per-example Real values"), _finite(ideal, "per-example Ideal values")
    if real.ndim != 2 or real.shape != ideal.shape or real.size == 0:
        raise InferenceError(
            f"per-example values: Real {real.shape} and Ideal {ideal.shape} must both be "
            "(seeds, test examples) and non-empty"
        )
    if draws < 100:
        raise InferenceError(f"draws {draws}: a percentile bootstrap needs at least 100 draws")
    diff = real - ideal
    k, n = diff.shape
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        w_seed = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(m)])
        w_ex = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(m)])
        means.append(np.einsum("dn,dn->d", w_seed @ diff, w_ex) / (k * n))
    low, high = np.quantile(np.concatenate(means), [(1 - level) / 2, (1 + level) / 2])
    return BootstrapInterval(float(diff.mean()), float(low), float(high), k, n, draws, seed, level)


def seed_test_interval(real, ideal, level: float = 0.95) -> BootstrapInterval:
    """CI of mean(Real - Ideal) over seeds and test examples from the two variance components:
    mean ± t_df sqrt(SE_seed^2 + SE_test^2), SE_seed = sd of the per-seed mean gaps / sqrt(K) (the paired
    t-test's SE, in which the shared test set cancels) and SE_test = sd over examples of the seed-averaged
    per-example gap / sqrt(N) (the shared test set's own sampling error, which more seeds cannot remove).
    df by Welch-Satterthwaite (Satterthwaite 1946, Biometrics Bull. 2:110). Slightly conservative: the
    seed-by-example noise enters both terms. Unlike the percentile bootstrap, whose seed part shrinks by
    (K - 1) / K and uses normal tails, it keeps its coverage at K = 3 (simulated, 300 trials per case:
    0.93-0.96 across seed- and test-dominated cases, where the bootstrap gave 0.75 with seed noise dominant
    at K = 3). The `draws` and `seed` fields of the record are 0: nothing is random.
    """
    real, ideal = _finite(real, "per-example Real values"), _finite(ideal, "per-example Ideal values")
    if real.ndim != 2 or real.shape != ideal.shape or real.shape[0] < 2 or real.shape[1] < 2:
        raise InferenceError(
            f"per-example values: Real {real.shape} and Ideal {ideal.shape} must both be "
            "(seeds >= 2, test examples >= 2)"
        )
    diff = real - ideal
    k, n = diff.shape
    v_seed = float(diff.mean(axis=1).var(ddof=1)) / k
    v_test = float(diff.mean(axis=0).var(ddof=1)) / n
    total = v_seed + v_test
    df = total**2 / (v_seed**2 / (k - 1) + v_test**2 / (n - 1)) if total > 0 else k - 1
    half = float(stats.t.ppf((1 + level) / 2, df)) * math.sqrt(total)
    mean = float(diff.mean())
    return BootstrapInterval(mean, mean - half, mean + half, k, n, 0, 0, level)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = _finite(p_values, "p-values").ravel()
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def benjamini_hochberg(p_values) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the input order."""
    p = _finite(p_values, "p-values").ravel()
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def tost_power(sd: float, margin: float, k: int, true_gap: float = 0.0, alpha: float = 0.05) -> float:
    """Power of the paired TOST with k seeds: P(T_low > t) + P(T_up < -t) - 1 under noncentral t.

    The standard noncentral-t approximation of TOST power (Phillips 1990, J. Pharmacokinet. Biopharm.
    18:137, gives the exact Owen's-Q form; the two agree closely once k is past a handful).
    """
    df, se = k - 1, sd / math.sqrt(k)
    t_crit = float(stats.t.ppf(1 - alpha, df))
    low = float(stats.nct.sf(t_crit, df, (true_gap + margin) / se))
    up = float(stats.nct.cdf(-t_crit, df, (true_gap - margin) / se))
    return max(0.0, low + up - 1)


def ttest_power(sd: float, true_gap: float, k: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with k seeds to detect a true mean difference `true_gap`."""
    df, nc = k - 1, true_gap / (sd / math.sqrt(k))
    t_crit = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(t_crit, df, nc) + stats.nct.cdf(-t_crit, df, nc))


def _check_plan(sd: float, margin: float, power: float) -> None:
    if not (math.isfinite(sd) and sd >= 0):
        raise InferenceError(f"sd {sd}: must be a finite number >= 0 (measure it on a pilot with >= 2 seeds)")
    if not (math.isfinite(margin) and margin > 0):
        raise InferenceError(f"margin {margin}: must be > 0")
    if not 0 < power < 1:
        raise InferenceError(f"power {power}: must be in (0, 1)")


def _fewest(power_at, power: float, most: int, what: str) -> int:
    """Smallest k >= 2 with power_at(k) >= power (power grows with k): double, then bisect."""
    low, high = 2, 2
    while power_at(high) < power:
        low, high = high, high * 2
        if high > most:
            raise InferenceError(f"more than {most:,} seeds needed for power {power:.0%} {what}")
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if power_at(mid) < power else (low, mid)
    return high


def seeds_needed(
    sd_of_diffs: float,
    margin: float,
    true_gap: float = 0.0,
    power: float = 0.8,
    alpha: float = 0.05,
    most: int = 100_000,
) -> int:
    """Fewest seeds (>= 2) for the resolving test to reach `power` at a true gap `true_gap`.

    With |true_gap| < margin the resolving test is the equivalence test (TOST within ±margin); with
    |true_gap| >= margin equivalence cannot hold, and it is the paired t-test detecting true_gap.
    """
    _check_plan(sd_of_diffs, margin, power)
    if abs(true_gap) >= margin:
        return seeds_to_detect(sd_of_diffs, true_gap, power, alpha, most)
    if sd_of_diffs == 0:
        return 2
    return _fewest(lambda k: tost_power(sd_of_diffs, margin, k, true_gap, alpha), power, most, f"at margin {margin}")


def seeds_to_detect(
    sd_of_diffs: float, true_gap: float, power: float = 0.8, alpha: float = 0.05, most: int = 100_000
) -> int:
    """Fewest seeds (>= 2) for the two-sided paired t-test to tell a true gap `true_gap` from 0."""
    _check_plan(sd_of_diffs, abs(true_gap) or math.nan, power)
    if sd_of_diffs == 0:
        return 2
    return _fewest(lambda k: ttest_power(sd_of_diffs, true_gap, k, alpha), power, most, f"at a gap of {true_gap}")


def examples_needed(example_sd: float, margin: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Test examples for the test set alone to resolve equivalence within ±margin at no true gap.

    `example_sd`: sd of the per-example paired differences (Real - Ideal) on one test example, averaged
    over seeds. The test set is shared by every seed, so its sampling error does not shrink with seeds;
    with N examples its SE is example_sd / sqrt(N). Normal approximation (N is in the hundreds at least):
    N = ((z_{1-alpha} + z_{1-(1-power)/2}) example_sd / margin)^2 (Chow, Shao & Wang, "Sample Size
    Calculations in Clinical Research", Sec. 3.2, equivalence at no true difference).
    """
    _check_plan(example_sd, margin, power)
    z = float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(1 - (1 - power) / 2))
    return max(1, math.ceil((z * example_sd / margin) ** 2))
