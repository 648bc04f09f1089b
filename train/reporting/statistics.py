"""Multi-seed statistics of Real vs Ideal and the verdict they support: pure functions of arrays.

Given K seeds of one comparison (seed s: a Real and an Ideal run sharing an init), on common evaluated steps:
- read-out: every seed is read at the SAME evaluated steps, the READOUT_EVALS evaluations centred on the
  median T(n) of the seeds that fit (or the last READOUT_EVALS when none fit: "at end"), averaged per seed;
  averaging a few neighbouring evaluations damps the step-to-step jitter of one evaluation;
- the paired gap d_s = Real_s - Ideal_s at the read-out, tested with `inference.paired_inference` (CI,
  p-value, TOST against the declared margin); Real and Ideal each as mean +- sd over seeds at those steps;
- the generalisation gap (Real test - Real train) at the read-out, with its CI; a relative margin is a
  fraction of its lower bound;
- the per-seed time-averaged signed gap over [n / batch, read-out] (trapezoid rule), tested the same way.
  The first epoch is left out: before step n / batch the Real World has not yet seen a sample twice, so the
  two worlds are the same random process (Nakkiran et al. 2021, "The Deep Bootstrap", Sec. 2);
- seeds whose Real World never fit are reported apart (their gap at the end), not averaged in, when
  other seeds fit.

    stats = seed_statistics(SeedCurves(steps, real, ideal, real_train, fit_steps, first_epoch_step=8), margin)
    verdict(stats).text
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from train.reporting.inference import PairedInference, decimals_for, paired_inference
from train.reporting.margin import DEFAULT_MARGIN, Margin

READOUT_EVALS = 3  # the evaluation nearest T(n) and one on each side


@dataclass(frozen=True)
class SeedCurves:
    """One metric of K seeds on S common steps (rows = seeds, in the same order everywhere)."""

    steps: np.ndarray  # (S,) evaluated steps, increasing
    real: np.ndarray  # (K, S) Real World test metric
    ideal: np.ndarray  # (K, S) Ideal World test metric
    real_train: np.ndarray  # (K, S) Real World train metric
    fit_steps: tuple  # (K,) T(n) of each seed; None where the Real World never fit
    first_epoch_step: float  # n / batch: the step at which the Real World starts its second epoch


@dataclass(frozen=True)
class MeanSd:
    mean: float
    sd: float
    count: int

    def to_dict(self) -> dict:
        return _json(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> MeanSd:
        return cls(_nan(data["mean"]), _nan(data["sd"]), int(data["count"]))


def _json(data: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def mean_sd(values) -> MeanSd:
    """Mean, sample standard deviation (ddof 1; nan for one value) and count of the finite values."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return MeanSd(math.nan, math.nan, 0)
    return MeanSd(float(np.mean(arr)), float(np.std(arr, ddof=1)) if len(arr) > 1 else math.nan, len(arr))


def readout_indices(steps: np.ndarray, centre: float, count: int = READOUT_EVALS) -> np.ndarray:
    """Indices of `count` consecutive evaluations centred on the one nearest `centre`, kept inside the grid."""
    count = min(count, len(steps))
    middle = int(np.argmin(np.abs(steps - centre)))
    first = min(max(0, middle - count // 2), len(steps) - count)
    return np.arange(first, first + count)


def time_averages(steps: np.ndarray, gaps: np.ndarray, start: float, end: float) -> np.ndarray:
    """Each row's time average over [start, end] (trapezoid rule, ends interpolated); nan if end <= start."""
    if not end > start:
        return np.full(len(gaps), math.nan)
    inside = steps[(steps > start) & (steps < end)]
    grid = np.concatenate([[start], inside, [end]]).astype(float)
    values = np.array([np.interp(grid, steps, row) for row in gaps])
    # Trapezoid rule by hand: numpy renamed trapz to trapezoid (2.0); this works with both.
    return np.sum((values[:, 1:] + values[:, :-1]) * np.diff(grid), axis=1) / 2 / (end - start)


@dataclass(frozen=True)
class SeedStatistics:
    """What a report states about one metric of K seeds (see the module docstring)."""

    seeds: int  # all seeds
    used: tuple  # indices of the seeds in the inference (the fitted ones, or all when none fit)
    fit_step: MeanSd  # T(n) over the seeds that fit
    at: str  # "T(n)" or "end"
    readout_steps: tuple  # the evaluated steps averaged at the read-out
    resolution: float  # spacing of the evaluation grid just before the read-out's centre (T(n) within it)
    real: MeanSd
    ideal: MeanSd
    per_seed_gap: tuple  # gap of every used seed at the read-out
    unfit_gap: tuple  # (seed index, gap at the end) of seeds never fit, when others fit
    generalisation_gap: MeanSd
    generalisation_low: float  # lower end of its 95% CI (nan with one seed)
    margin: float  # resolved equivalence margin (nan when none can be resolved)
    margin_text: str  # what was declared, e.g. "20% of the generalisation gap's lower 95% confidence bound"
    gap: PairedInference | None  # None with one used seed
    window: tuple  # (start, end) of the time average
    per_seed_time_avg: tuple
    time_avg: PairedInference | None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("fit_step", "real", "ideal", "generalisation_gap", "gap", "time_avg"):
            out[key] = None if out[key] is None else out[key].to_dict()
        out.update(
            used=list(self.used),
            readout_steps=list(self.readout_steps),
            window=list(self.window),
            per_seed_gap=list(self.per_seed_gap),
            unfit_gap=[list(u) for u in self.unfit_gap],
            per_seed_time_avg=[None if not math.isfinite(v) else v for v in self.per_seed_time_avg],
        )
        return _json(out)

    @classmethod
    def from_dict(cls, d: dict) -> SeedStatistics:
        def inf(key):
            return None if d.get(key) is None else PairedInference.from_dict(d[key])

        return cls(
            seeds=d["seeds"],
            used=tuple(d["used"]),
            fit_step=MeanSd.from_dict(d["fit_step"]),
            at=d["at"],
            readout_steps=tuple(d["readout_steps"]),
            resolution=_nan(d["resolution"]),
            real=MeanSd.from_dict(d["real"]),
            ideal=MeanSd.from_dict(d["ideal"]),
            per_seed_gap=tuple(d["per_seed_gap"]),
            unfit_gap=tuple(tuple(u) for u in d["unfit_gap"]),
            generalisation_gap=MeanSd.from_dict(d["generalisation_gap"]),
            generalisation_low=_nan(d["generalisation_low"]),
            margin=_nan(d["margin"]),
            margin_text=d["margin_text"],
            gap=inf("gap"),
            window=tuple(d["window"]),
            per_seed_time_avg=tuple(_nan(v) for v in d["per_seed_time_avg"]),
            time_avg=inf("time_avg"),
        )

    @property
    def fitted(self) -> int:
        return self.fit_step.count

    @property
    def readout_step(self) -> float:
        """The centre of the read-out (the evaluation nearest the median T(n), or the last one)."""
        return float(self.readout_steps[len(self.readout_steps) // 2])


def _used_seeds(fit_steps: tuple) -> tuple[tuple, str]:
    fitted = tuple(i for i, f in enumerate(fit_steps) if f is not None)
    return (fitted, "T(n)") if fitted else (tuple(range(len(fit_steps))), "end")


def _generalisation_ci(values: np.ndarray) -> float:
    """Lower end of the t-quantile 95% CI of the mean generalisation gap; nan with one seed."""
    if len(values) < 2:
        return math.nan
    return paired_inference(values, margin=math.nan).ci_low


def seed_statistics(c: SeedCurves, margin: Margin | None = None) -> SeedStatistics:
    """Read-out, paired inference, generalisation gap and time-averaged gap of K seeds (module docstring)."""
    margin = margin or Margin.parse(DEFAULT_MARGIN)
    used, at = _used_seeds(c.fit_steps)
    fits = [float(c.fit_steps[i]) for i in used] if at == "T(n)" else []
    idx = readout_indices(c.steps, float(np.median(fits)) if fits else float(c.steps[-1]))
    centre = idx[len(idx) // 2]
    real, ideal, train = (m[list(used)][:, idx].mean(axis=1) for m in (c.real, c.ideal, c.real_train))
    gaps = real - ideal
    gen = real - train
    gen_low = _generalisation_ci(gen)
    resolved = margin.resolve(gen_low)
    window = (float(c.first_epoch_step), float(c.steps[centre]))
    averaged = time_averages(c.steps, (c.real - c.ideal)[list(used)], *window)
    unfit = tuple(
        (i, float(c.real[i, -1] - c.ideal[i, -1])) for i in range(len(c.fit_steps)) if at == "T(n)" and i not in used
    )
    return SeedStatistics(
        seeds=len(c.real),
        used=used,
        fit_step=mean_sd(fits),
        at=at,
        readout_steps=tuple(int(s) for s in c.steps[idx]),
        resolution=float(c.steps[centre] - c.steps[centre - 1]) if centre > 0 else math.nan,
        real=mean_sd(real),
        ideal=mean_sd(ideal),
        per_seed_gap=tuple(float(g) for g in gaps),
        unfit_gap=unfit,
        generalisation_gap=mean_sd(gen),
        generalisation_low=gen_low,
        margin=resolved,
        margin_text=margin.describe(),
        gap=paired_inference(gaps, resolved) if len(used) > 1 else None,
        window=window,
        per_seed_time_avg=tuple(float(v) for v in averaged),
        time_avg=(paired_inference(averaged, resolved) if len(used) > 1 and np.isfinite(averaged).all() else None),
    )


@dataclass(frozen=True)
class Verdict:
    """The outcome code (inference.OUTCOMES, or "no-verdict") and the sentences that state it."""

    code: str
    text: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        return cls(data["code"], data["text"])


def readout_text(st: SeedStatistics) -> str:
    """Where the figures are read: the steps averaged, and T(n) with its grid resolution."""
    steps = ", ".join(f"{s:,}" for s in st.readout_steps)
    if st.at == "end":
        return (
            f"Read at end (no seed's Real World reached the fit threshold, so T(n) is undefined): the mean of "
            f"the last {len(st.readout_steps)} evaluations (steps {steps})."
        )
    spread = f" ± {st.fit_step.sd:,.0f}" if math.isfinite(st.fit_step.sd) else ""
    grid = (
        f"; the evaluation grid there is {st.resolution:,.0f} steps apart, so T(n) is known to within that"
        if math.isfinite(st.resolution)
        else ""
    )
    return (
        f"T(n) = {st.fit_step.mean:,.0f}{spread} over {st.fitted} seed{'s' if st.fitted != 1 else ''}{grid}. "
        f"Every seed is read at the same steps: the mean of the {len(st.readout_steps)} evaluations around "
        f"the median T(n) (steps {steps})."
    )


def _no_margin(st: SeedStatistics) -> str:
    why = "one seed gives no confidence bound" if len(st.used) < 2 else "that bound is not above 0"
    return f", which is undefined here ({why}), so no equivalence test is possible."


def verdict(st: SeedStatistics, metric: str = "test soft-error") -> Verdict:
    """What the numbers support, worded with them; 'as the Deep Bootstrap claims' only for equivalence."""
    gen = st.generalisation_gap
    d = decimals_for(st.gap.se if st.gap else math.nan)
    context = (
        f"The Real World's generalisation gap (test - train) at the read-out is {gen.mean:+.{d}f}"
        + (f" (95% CI lower bound {st.generalisation_low:+.{d}f})" if math.isfinite(st.generalisation_low) else "")
        + f"; the margin declared before the run is {st.margin_text}"
        + (f" = ±{st.margin:.{d}f}." if math.isfinite(st.margin) else _no_margin(st))
    )
    apart = ""
    if st.unfit_gap:
        apart = (
            f" {len(st.unfit_gap)} seed(s) never fit and are reported apart (gap at the end: "
            + ", ".join(f"{g:+.{d}f}" for _, g in st.unfit_gap)
            + ")."
        )
    if st.gap is None:
        return Verdict(
            "no-verdict",
            f"{readout_text(st)} With one seed no verdict is possible: the seed-to-seed "
            f"noise is unknown. {context}{apart} Run with --seeds 3 or more.",
        )
    text = f"{readout_text(st)} {st.gap.describe(metric)} {context}{apart}"
    if st.gap.outcome == "equivalent":
        text += (
            " Within that margin the Ideal World's test error predicts the Real World's, as the Deep Bootstrap claims."
        )
    elif st.gap.outcome == "differ-within-margin" or (
        st.gap.outcome == "differ" and st.gap.ci_high < gen.mean and st.gap.ci_low > -gen.mean
    ):
        text += (
            " The whole CI is smaller in size than the generalisation gap: the Ideal World predicts the Real "
            "World's test error better than its train error does."
        )
    return Verdict(st.gap.outcome, text)
