"""The bootstrap report: Real World (n) vs Ideal World over K seeds of one experiment folder.

Writes `report.md`, `soft_error.png`, `gap.png` and `results.json` (every number in the report).
Markdown files in `DIR/sections/` (e.g. the demo's generator-quality figures) are appended to a
bootstrap report in name order, so they survive re-rendering.

Per test set and metric (soft-error, error, cross-entropy loss) the report states, over seeds
(train/reporting/statistics.py): the read-out steps (the same for every seed), each world's value with the
test set's sampling SE beside it, the paired gap with its 95% CI, p-value and TOST against the margin
declared in experiment.json, the generalisation gap, and the per-seed time-averaged signed gap over
[n / batch, read-out] with its CI. The verdict is the paired inference's outcome (`statistics.verdict`,
shared with the sweep report); figures are rounded to what their SE supports.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from shards.jsonio import write_text_atomic
from train.errors import TrainError
from train.reporting.experiment_file import REPORT, read_experiment, write_results
from train.reporting.formatting import (
    fmt,
    fmt_ci,
    fmt_int,
    fmt_se,
    ledger_table,
    provenance_notes,
    runs_table,
    sampling_se,
)
from train.reporting.inference import BootstrapInterval, seed_test_interval
from train.reporting.margin import Margin
from train.reporting.planning import Plan, make_plan
from train.reporting.plots import EXTRA_COLORS, IDEAL_COLOR, MARKERS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.regime import regime_checks
from train.reporting.results import (
    METRIC_NAMES,
    METRICS,
    RunRecord,
    config_differences,
    json_safe,
    load_run,
    seed_curves,
)
from train.reporting.statistics import (
    READOUT_EVALS,
    SeedStatistics,
    readout_text,
    seed_statistics,
    verdict,
)
from train.run import test_outputs


def seed_entries(spec: dict) -> list[dict]:
    """[{seed, real, ideal}] of an experiment.json; the one-seed form of older experiments is read too."""
    runs = spec.get("runs", {"real": "real", "ideal": "ideal"})
    if isinstance(runs, dict):
        return [{"seed": (spec.get("config") or {}).get("seed", 0), **runs}]
    return runs


def render_bootstrap(exp_dir: str | Path) -> dict:
    """Write report.md, soft_error.png, gap.png and results.json for a bootstrap experiment."""
    exp_dir = Path(exp_dir)
    spec = read_experiment(exp_dir)
    entries = seed_entries(spec)
    pairs = [(load_run(exp_dir / e["real"]), load_run(exp_dir / e["ideal"])) for e in entries]
    stats = compare_seeds(pairs, Margin.from_dict(spec.get("margin")))
    config = spec.get("config") or pairs[0][0].config
    counts = eval_counts(pairs[0][0], config)
    figures = [
        world_figure(exp_dir / "soft_error.png", pairs, stats, config),
        gap_figure(exp_dir / "gap.png", pairs, stats),
    ]
    combined = combined_interval(pairs, stats["test"]["soft_error"])
    headline = bootstrap_headline(exp_dir, config, stats, counts, combined)
    text = bootstrap_markdown(exp_dir, entries, pairs, stats, config, figures, headline, counts)
    plan, plan_text = planning(pairs, stats["test"]["soft_error"])
    regime = regime_checks(config.get("data"), stats)
    write_text_atomic(exp_dir / REPORT, text.replace(PLAN_SLOT, plan_text).replace(REGIME_SLOT, regime.describe()))
    write_results(
        exp_dir,
        {
            "headline": headline.to_dict(),
            "plan": {**(plan.to_dict() if plan else {}), "text": plan_text},
            "regime": regime.to_dict(),
            "statistics": {n: {m: st.to_dict() for m, st in ms.items()} for n, ms in stats.items()},
            "per_seed": per_seed_rows(entries, pairs, stats["test"]["soft_error"]),
        },
    )
    return json_safe(headline.to_dict())


def compare_seeds(pairs: list[tuple[RunRecord, RunRecord]], margin: Margin | None = None) -> dict:
    """{set: {metric: SeedStatistics}} for every test set and metric both worlds of every seed logged."""
    sets = [name for name in pairs[0][0].eval_sets() if all(name in run.eval_sets() for pair in pairs for run in pair)]
    out = {}
    for name in sets:
        out[name] = {
            metric: seed_statistics(seed_curves(pairs, name, metric), margin)
            for metric in METRICS
            if all(
                len(run.series(f"{name}/{metric}")[0]) and len(run.series(f"train/{metric}")[0])
                for pair in pairs
                for run in pair
            )
        }
    return out


def eval_counts(run: RunRecord, config: dict) -> dict:
    """{set: examples evaluated}, as logged with each evaluation; else the config's test_samples."""
    counts = {name: run.rows[-1].get(f"{name}/count") for name in run.eval_sets()}
    if not counts.get("test") and config.get("test_samples"):
        counts["test"] = config["test_samples"]
    return counts


def combined_interval(pairs, st: SeedStatistics, row: str = "soft_error") -> BootstrapInterval | None:
    """The CI over seeds and test examples together from the kept per-example outputs at the read-out
    (`inference.seed_test_interval`); None with one seed or when a run kept none (multi-process runs)."""
    if len(st.used) < 2:
        return None
    worlds = []
    for world in (0, 1):
        per_seed = [test_outputs.load(pairs[i][world].run_dir, st.readout_steps, row) for i in st.used]
        if any(values is None for values in per_seed):
            return None
        worlds.append(np.stack([values.mean(axis=0) for values in per_seed]))
    if worlds[0].shape != worlds[1].shape:
        return None
    return seed_test_interval(worlds[0], worlds[1])


def se_of(st: SeedStatistics, metric: str, count) -> float:
    """Test-set sampling SE of the seed-averaged read-out (rates only; nan for the loss)."""
    if metric == "loss":
        return math.nan
    return sampling_se(np.mean([st.real.mean, st.ideal.mean]), count)


def per_seed_rows(entries: list[dict], pairs, st: SeedStatistics) -> list[dict]:
    """Each seed's T(n) and its test soft-error gap at the common read-out (or apart, if it never fit)."""
    gaps = dict(zip(st.used, st.per_seed_gap))
    unfit = dict(st.unfit_gap)
    return [
        {
            "seed": e["seed"],
            "fit_step": real.fit_step(),
            "gap": gaps.get(i, unfit.get(i)),
            "in_inference": i in gaps,
            "real_dir": e["real"],
            "ideal_dir": e["ideal"],
            "finished": real.finished,
        }
        for i, (e, (real, _)) in enumerate(zip(entries, pairs))
    ]


def _mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over seeds (rows) and, with two or more seeds, the sd band."""
    return curves.mean(axis=0), (curves.std(axis=0, ddof=1) if len(curves) > 1 else None)


def _ci_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over seeds (rows) and, with two or more seeds, the half-width of its t-quantile 95% CI."""
    k = len(curves)
    if k < 2:
        return curves.mean(axis=0), None
    return curves.mean(axis=0), scipy_stats.t.ppf(0.975, k - 1) * curves.std(axis=0, ddof=1) / math.sqrt(k)


def world_figure(path: Path, pairs, stats: dict, config: dict) -> Path:
    """The paper's Fig. 1: mean test soft-error vs step of both worlds +- sd over seeds, train dashed."""
    c = seed_curves(pairs, "test", "soft_error")
    ideal_train = np.array([np.interp(c.steps, *ideal.series("train/soft_error")) for _, ideal in pairs])
    lines = []
    for label, curves, color, style in (
        ("Real test", c.real, REAL_COLOR, "-"),
        ("Ideal test", c.ideal, IDEAL_COLOR, "-"),
        ("Real train", c.real_train, REAL_COLOR, "--"),
        ("Ideal train", ideal_train, IDEAL_COLOR, "--"),
    ):
        mean, band = _mean_band(curves)
        lines.append(Line(c.steps, mean, label, color, style, band=band))
    for i, name in enumerate(n for n in stats if n != "test"):
        extra = seed_curves(pairs, name, "soft_error")
        for world, curves, color in (("Real", extra.real, REAL_COLOR), ("Ideal", extra.ideal, IDEAL_COLOR)):
            lines.append(
                Line(extra.steps, curves.mean(axis=0), f"{world} {name}", color, "-.", MARKERS[i % len(MARKERS)])
            )
    soft = stats["test"]["soft_error"]
    seeds = f", mean ± sd over {soft.seeds} seeds" if soft.seeds > 1 else ", one seed"
    panel = Panel(
        tuple(lines),
        "soft-error",
        vline=soft.readout_step,
        vline_label=_readout_label(soft),
        title=f"Real World (n = {fmt_int(config.get('n'))}) vs Ideal World{seeds}",
    )
    return save_panels(path, [panel])


def _readout_label(st: SeedStatistics) -> str:
    return f"read-out {'T(n)' if st.at == 'T(n)' else 'at end'} ({st.readout_step:,.0f})"


def gap_figure(path: Path, pairs, stats: dict) -> Path:
    """Real - Ideal vs step for each metric and test set: the mean paired gap over the seeds in the inference
    with its 95% CI band (t-quantile, per step); the window of the time-averaged gap shaded."""
    panels = []
    for metric in METRICS:
        lines, window = [], None
        for i, name in enumerate(stats):
            if metric not in stats[name]:
                continue
            c, st = seed_curves(pairs, name, metric), stats[name][metric]
            mean, band = _ci_band((c.real - c.ideal)[list(st.used)])
            color = "black" if name == "test" else EXTRA_COLORS[i % len(EXTRA_COLORS)]
            lines.append(Line(c.steps, mean, name, color, band=band))
            window = window or st.window
        test = stats["test"].get(metric) or stats["test"]["soft_error"]
        shade = window if window and window[1] > window[0] else None
        panels.append(
            Panel(
                tuple(lines),
                f"Real - Ideal test {METRIC_NAMES[metric]}",
                vline=test.readout_step,
                vline_label=_readout_label(test),
                zero_line=True,
                shade=shade,
                shade_label="time-average window" if shade else "",
                title=f"paired gap, 95% CI: {METRIC_NAMES[metric]}",
            )
        )
    return save_panels(path, panels)


@dataclass(frozen=True)
class BootstrapHeadline:
    """The figures a console summary and the demo show (results.json's "headline")."""

    kind: str
    dir: str
    report: str
    n: int | None
    model: str | None
    steps: int | None
    seeds: int
    fitted: int
    fit_step: float | None  # mean T(n) of the seeds that fit
    fit_step_sd: float
    fit_threshold: float
    at: str  # "T(n)" or "end"
    ref_step: float  # centre of the read-out
    readout_steps: list
    resolution: float
    real_test_soft_error: float
    ideal_test_soft_error: float
    test_se: float  # test set's sampling SE of those two figures
    gap: float
    gap_sd: float
    gap_se: float
    ci_low: float
    ci_high: float
    p_value: float
    tost_p: float
    margin: float
    margin_text: str
    generalisation_gap: float
    time_avg_gap: float
    time_avg_ci: list
    seed_test_ci: list  # 95% CI over seeds and test examples together; nan without kept outputs
    other_gaps: dict  # {"error": {...}, "loss": {...}}: mean, ci_low, ci_high, p_value, outcome
    extra: dict
    verdict_code: str
    verdict: str

    def to_dict(self) -> dict:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> BootstrapHeadline:
        kwargs: dict[str, Any] = {
            k: (math.nan if v is None and k not in ("n", "model", "steps", "fit_step") else v)
            for k, v in data.items()
            if k in cls.__dataclass_fields__
        }
        return cls(**kwargs)


def _gap_dict(st: SeedStatistics) -> dict:
    g = st.gap
    if g is None:
        return {"mean": st.per_seed_gap[0] if st.per_seed_gap else math.nan, "outcome": "no-verdict"}
    return {"mean": g.mean, "ci_low": g.ci_low, "ci_high": g.ci_high, "p_value": g.p_value, "outcome": g.outcome}


def bootstrap_headline(
    exp_dir: Path, config: dict, stats: dict, counts: dict, combined: BootstrapInterval | None = None
) -> BootstrapHeadline:
    soft = stats["test"]["soft_error"]
    judged, g, t = verdict(soft), soft.gap, soft.time_avg
    nan = math.nan
    return BootstrapHeadline(
        kind="bootstrap",
        dir=str(exp_dir),
        report=str(exp_dir / REPORT),
        n=config.get("n"),
        model=config.get("model"),
        steps=config.get("steps"),
        seeds=soft.seeds,
        fitted=soft.fitted,
        fit_step=soft.fit_step.mean if soft.fitted else None,
        fit_step_sd=soft.fit_step.sd,
        fit_threshold=config.get("fit_threshold", 0.01),
        at=soft.at,
        ref_step=soft.readout_step,
        readout_steps=list(soft.readout_steps),
        resolution=soft.resolution,
        real_test_soft_error=soft.real.mean,
        ideal_test_soft_error=soft.ideal.mean,
        test_se=se_of(soft, "soft_error", counts.get("test")),
        gap=g.mean if g else _gap_dict(soft)["mean"],
        gap_sd=g.sd if g else nan,
        gap_se=g.se if g else nan,
        ci_low=g.ci_low if g else nan,
        ci_high=g.ci_high if g else nan,
        p_value=g.p_value if g else nan,
        tost_p=g.tost_p if g else nan,
        margin=soft.margin,
        margin_text=soft.margin_text,
        generalisation_gap=soft.generalisation_gap.mean,
        time_avg_gap=t.mean if t else nan,
        time_avg_ci=[t.ci_low, t.ci_high] if t else [nan, nan],
        seed_test_ci=[combined.ci_low, combined.ci_high] if combined else [nan, nan],
        other_gaps={m: _gap_dict(st) for m, st in stats["test"].items() if m != "soft_error"},
        extra={
            name: {"real": m["soft_error"].real.mean, "ideal": m["soft_error"].ideal.mean, **_gap_dict(m["soft_error"])}
            for name, m in stats.items()
            if name != "test" and "soft_error" in m
        },
        verdict_code=judged.code,
        verdict=judged.text,
    )


def bootstrap_markdown(exp_dir, entries, pairs, stats, config, figures, headline, counts) -> str:
    lines = [f"# Deep Bootstrap: Real World (n = {fmt_int(config.get('n'))}) vs Ideal World", ""]
    lines += [_settings_line(config, entries), "", "## Result", "", headline.verdict, "", _combined_text(headline), ""]
    lines += [REGIME_SLOT, ""] + _notes(pairs, stats)
    lines += ["## Figures", ""]
    lines += [f"![{fig.stem}]({fig.relative_to(exp_dir).as_posix()})" for fig in figures] + [""]
    lines += [
        "`soft_error.png`: test soft-error of both worlds (solid) and train soft-error (dashed), mean over "
        "seeds with ± sd bands; extra test sets dash-dot; the read-out dotted. `gap.png`: the paired gap "
        "Real - Ideal on each test set, mean over the seeds in the inference with its 95% CI band "
        "(t-quantile, step by step: a pointwise band, not a simultaneous one) for soft-error, error and "
        "loss; the shaded window [n / batch, read-out] is where the time-averaged gap is taken (the first "
        "epoch is left out: there both worlds draw fresh samples, so they are the same random process).",
        "",
    ]
    soft = stats["test"]["soft_error"]
    lines += ["## Planning", "", PLAN_SLOT, ""]
    lines += seed_table(per_seed_rows(entries, pairs, soft), soft.gap.se if soft.gap else math.nan)
    lines += statistics_table(stats, counts)
    runs = [
        (f"{world} s{e['seed']}", run) for e, pair in zip(entries, pairs) for world, run in zip(("Real", "Ideal"), pair)
    ]
    lines += ledger_table(runs) + runs_table(exp_dir, runs)
    for section in sorted((exp_dir / "sections").glob("*.md")):
        lines += [section.read_text().rstrip(), ""]
    return "\n".join(lines)


PLAN_SLOT, REGIME_SLOT = "<!-- plan -->", "<!-- regime -->"


def planning(pairs, st: SeedStatistics) -> tuple[Plan | None, str]:
    """What this experiment's spread implies for the next one (`train bootstrap --plan` prints the same),
    and its own power; (None, why) when it cannot be planned from."""
    if st.gap is None:
        return None, "With one seed the spread is unknown, so no plan: run a pilot with --seeds 3 or more."
    try:
        plan = make_plan(pairs, st)
    except TrainError as exc:
        return None, str(exc)
    return plan, plan.describe()


def _combined_text(h: BootstrapHeadline) -> str:
    """The seed-only CI holds the test set fixed; this one also resamples its examples."""
    se = h.gap_se if math.isfinite(h.gap_se) else h.test_se
    if not math.isfinite(h.seed_test_ci[0]):
        return (
            "The test set's own sampling error is not in the CIs above: the runs kept no per-example test "
            "outputs (multi-process runs do not)."
        )
    return (
        f"Counting the test set's sampling error too (its per-example outputs at the read-out; seed and "
        f"test-set variance components, Welch-Satterthwaite df): 95% CI {fmt_ci(h.seed_test_ci[0], h.seed_test_ci[1], se)}, beside the seed-only "
        f"CI {fmt_ci(h.ci_low, h.ci_high, se)}. The verdict above holds this test set fixed; for the "
        "distribution the test set was drawn from, use the CI over seeds and test examples."
    )


def _settings_line(config: dict, entries: list[dict]) -> str:
    seeds = ", ".join(str(e["seed"]) for e in entries)
    return (
        f"Data `{config.get('data')}`, model `{config.get('model')}`, {fmt_int(config.get('steps'))} "
        f"SGD steps at batch {fmt_int(config.get('batch_size'))}, seeds {seeds}. Both worlds of a seed "
        "share one config (same model and init, optimiser, schedule, batch, augmentation, evaluation "
        "steps); only the sampler differs."
    )


def _notes(pairs, stats: dict) -> list[str]:
    notes = []
    for real, ideal in pairs:
        for world, run in (("Real", real), ("Ideal", ideal)):
            if not run.finished:
                notes.append(
                    f"{run.run_dir} ({world}) has not finished (last evaluated step "
                    f"{run.last_step():,}); re-run the same command to complete it."
                )
        diffs = config_differences(real, ideal)
        if diffs:
            shown = ", ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in ((k, *v) for k, v in diffs.items()))
            notes.append(f"Warning: {real.run_dir} and {ideal.run_dir} differ beyond mode and folder ({shown}).")
        for run in (real, ideal):
            if (run.summary or {}).get("batchnorm") == "per-rank":
                notes.append(
                    f"{run.run_dir}: BatchNorm statistics were per rank ({run.summary.get('world_size')} "
                    "DDP processes on CPU, where SyncBatchNorm cannot run), so each normalised "
                    "batch / world samples: not the same computation as one process."
                )
        ledger = (ideal.summary or {}).get("ledger") or {}
        if ledger and not ledger.get("no_reuse", True):
            notes.append(
                f"{ideal.run_dir} reused samples ({ledger.get('passes')} passes over the pool), "
                "so it is not a pure Ideal World."
            )
    notes += provenance_notes([run for pair in pairs for run in pair])
    return ([f"- {note}" for note in notes] + [""]) if notes else []


def seed_table(rows: list[dict], se: float) -> list[str]:
    lines = [
        "## Each seed (test soft-error gap at the common read-out)",
        "",
        "| seed | T(n) | gap (Real - Ideal) | in the inference | Real run | Ideal run |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = fmt_int(r["fit_step"]) if r["fit_step"] is not None else "never fit"
        used = "yes" if r["in_inference"] else "no: never fit (gap at the end)"
        lines.append(
            f"| {r['seed']} | {t} | {fmt_se(r['gap'], se, True)} | {used} | `{r['real_dir']}` | `{r['ideal_dir']}` |"
        )
    return lines + [""]


def statistics_table(stats: dict, counts: dict) -> list[str]:
    lines = [
        "## Real vs Ideal on each test set",
        "",
        "| test set | metric | Real | Ideal | test-set SE | gap [95% CI] | p | TOST p | outcome | "
        "generalisation gap | time-averaged gap [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, metrics in stats.items():
        for metric, st in metrics.items():
            se = se_of(st, metric, counts.get(name))
            lines.append(
                f"| {name} | {METRIC_NAMES[metric]} | {_world(st.real, se)} | {_world(st.ideal, se)} | "
                f"{fmt(se, 4) if math.isfinite(se) else 'n/a'} | {_inference(st.gap)} | "
                f"{_p(st.gap, 'p_value')} | {_p(st.gap, 'tost_p')} | {st.gap.outcome if st.gap else 'no-verdict'} | "
                f"{fmt_se(st.generalisation_gap.mean, se, True)} | {_inference(st.time_avg)} |"
            )
    first = next(iter(next(iter(stats.values())).values()))
    return lines + [
        "",
        f"{readout_text(first)} Values are mean ± sd over the seeds in the inference, rounded to "
        "what the test set's sampling SE supports (that SE is for one seed's figure: sqrt(p (1 - p) / "
        "N), exact for the error, an upper bound for the soft-error; n/a for the loss). gap = Real - "
        "Ideal, paired by seed; its CI and p come from the paired t-test over seeds (the test set is "
        "held fixed), TOST against the declared margin. Generalisation gap: Real test - Real train. "
        f"Time-averaged gap: each seed's signed gap averaged over [n / batch, read-out] (trapezoid rule), "
        f"then a t CI over seeds. Read-out: the mean of {READOUT_EVALS} evaluations.",
        "",
    ]


def _world(stat, se) -> str:
    sd = f" ± {fmt_se(stat.sd, se)}" if math.isfinite(stat.sd) else ""
    return fmt_se(stat.mean, se) + sd


def _inference(res) -> str:
    if res is None:
        return "n/a (one seed)"
    return f"{fmt_se(res.mean, res.se, True)} {fmt_ci(res.ci_low, res.ci_high, res.se)}"


def _p(res, key: str) -> str:
    value = getattr(res, key) if res is not None else math.nan
    return "n/a" if not math.isfinite(value) else "< 0.001" if value < 0.001 else f"{value:.2g}"


def format_bootstrap_headline(headline: dict) -> str:
    """A few console lines: where the bootstrap report is and its headline figures."""
    h = BootstrapHeadline.from_dict(headline)
    at = "T(n)" if h.at == "T(n)" else "end"
    se = h.gap_se if math.isfinite(h.gap_se) else h.test_se
    out = [
        f"report: {h.report}",
        f"  {h.seeds} seed(s), {h.fitted} fit; read-out at {at}: steps {', '.join(f'{s:,}' for s in h.readout_steps)}",
        f"  test soft-error at {at}: Real {fmt_se(h.real_test_soft_error, h.test_se)}  Ideal "
        f"{fmt_se(h.ideal_test_soft_error, h.test_se)} (test-set SE {fmt(h.test_se, 4)})  gap "
        f"{fmt_se(h.gap, se, True)} 95% CI {fmt_ci(h.ci_low, h.ci_high, se)}  generalisation gap "
        f"{fmt_se(h.generalisation_gap, se, True)}",
        f"  time-averaged gap over [n / batch, read-out]: {fmt_se(h.time_avg_gap, se, True)} 95% CI "
        f"{fmt_ci(h.time_avg_ci[0], h.time_avg_ci[1], se)}",
        f"  gap's 95% CI over seeds and test examples together: {fmt_ci(h.seed_test_ci[0], h.seed_test_ci[1], se)}",
    ]
    for metric, g in h.other_gaps.items():
        out.append(f"  test {METRIC_NAMES[metric]} gap: {fmt_se(g['mean'], se, True)} ({g['outcome']})")
    for name, e in h.extra.items():
        out.append(
            f"  {name} soft-error at {at}: Real {fmt(e['real'], 3)}  Ideal {fmt(e['ideal'], 3)}  "
            f"gap {fmt_se(e['mean'], se, True)} ({e['outcome']})"
        )
    out += textwrap.wrap(
        f"verdict ({h.verdict_code}): {h.verdict}", width=110, initial_indent="  ", subsequent_indent="    "
    )
    return "\n".join(out)


def plan_from_pilot(pilot_dir: str | Path, margin: Margin) -> Plan:
    """Read a bootstrap pilot folder and plan for `margin` (applied to the pilot's generalisation gap)."""
    pilot_dir = Path(pilot_dir)
    spec = read_experiment(pilot_dir)
    if spec.get("kind") != "bootstrap":
        raise TrainError(
            f"--plan {pilot_dir}: not a bootstrap experiment folder (no experiment.json of kind "
            "bootstrap); give the --out folder of a `train bootstrap --seeds 3` pilot"
        )
    pairs = [(load_run(pilot_dir / e["real"]), load_run(pilot_dir / e["ideal"])) for e in seed_entries(spec)]
    return make_plan(pairs, compare_seeds(pairs, margin)["test"]["soft_error"])
