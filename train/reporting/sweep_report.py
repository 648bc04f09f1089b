"""The sweep report: Real vs Ideal over a grid of n x models x lrs x seeds (the paper's Fig. 2 and L(n)).

Reads `<exp>/experiment.json` (written by `train.experiments.sweep.sweep`, which lists every run of the grid)
and each run's saved metrics; writes `report.md`, `scatter.png`, `learning_curve.png` and
`results.json` into `<exp>`. Runs not finished yet are listed and left out of the figures.

- scatter: Real vs Ideal test soft-error at T(n) with y = x (Fig. 2): one point per (model, lr, n),
  the mean over seeds (+- sd bars); colour = architecture, marker = learning rate, as the paper draws it;
- learning curve: L(n) = Real test soft-error at T(n) beside L~(T(n)) = Ideal test soft-error read
  at the same T(n): the Deep Bootstrap identity says L(n) ~= L~(T(n)). Mean +- sd over seeds.
Each (model, lr, n) cell is tested over its seeds as a bootstrap report tests its seeds (paired t-test
and TOST against the margin in experiment.json, train/reporting/statistics.py); across cells both families
of p-values are Holm-corrected (family-wise error 5%) and each cell's verdict and the headline's counts use
the corrected p-values. In the figures, error bars are 95% CIs over seeds. Seeds whose Real World never
fit are left out of a cell where other seeds fit (said in the tables).

    python -m train report EXP_DIR
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from shards.jsonio import write_text_atomic
from train.reporting.experiment_file import REPORT, read_experiment, write_results
from train.reporting.formatting import fmt, fmt_ci, fmt_gap, fmt_int, fmt_se, provenance_notes, sampling_se
from train.reporting.inference import OUTCOMES, holm, outcome_of
from train.reporting.margin import Margin
from train.reporting.plots import EXTRA_COLORS, IDEAL_COLOR, MARKERS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.results import compare_worlds, json_safe, load_run, seed_curves
from train.reporting.statistics import MeanSd, mean_sd, seed_statistics, verdict
from train.run import runfolder

ARCH_COLORS = (REAL_COLOR, IDEAL_COLOR) + EXTRA_COLORS


def render_sweep(exp_dir: str | Path) -> dict:
    exp_dir = Path(exp_dir)
    spec = read_experiment(exp_dir)
    points, missing = collect_points(exp_dir, spec["runs"], spec.get("config", {}).get("lr"))
    groups = aggregate(exp_dir, points, Margin.from_dict(spec.get("margin")))
    figures = []
    if points:
        figures = [
            scatter_figure(exp_dir / "scatter.png", groups),
            learning_curve_figure(exp_dir / "learning_curve.png", groups),
        ]
    headline = sweep_headline(exp_dir, spec, points, groups)
    folders = sorted({p[k] for p in points for k in ("real_dir", "ideal_dir")})
    notes = tuple(provenance_notes([load_run(exp_dir / folder) for folder in folders]))
    write_text_atomic(exp_dir / REPORT, sweep_markdown(spec, points, missing, groups, figures, headline, notes))
    write_results(exp_dir, {"headline": headline, "points": points, "groups": groups})
    return json_safe(headline)


def collect_points(exp_dir: Path, runs: list[dict], lr: float | None = None) -> tuple[list[dict], list[dict]]:
    """One point per (model, lr, n, seed) whose Real and Ideal runs have both finished (`lr`: the base
    config's, for entries of sweeps written before --lr lists)."""
    points, missing = [], []
    for entry in runs:
        real_dir, ideal_dir = exp_dir / entry["real"], exp_dir / entry["ideal"]
        if not (runfolder.is_finished(real_dir) and runfolder.is_finished(ideal_dir)):
            missing.append(entry)
            continue
        real, ideal = load_run(real_dir), load_run(ideal_dir)
        cmp = compare_worlds(real, ideal)
        soft, err = cmp["sets"]["test"]["soft_error"], cmp["sets"]["test"]["error"]
        points.append(
            {
                "model": entry["model"],
                "lr": entry.get("lr", lr),
                "n": entry["n"],
                "seed": entry["seed"],
                "fit_step": cmp["fit_step"],
                "ref_step": cmp["ref_step"],
                "real": soft["real_at_fit"],
                "ideal": soft["ideal_at_fit"],
                "gap": soft["gap_at_fit"],
                "max_abs_gap": soft["max_abs_gap"],
                "real_error": err["real_at_fit"],
                "ideal_error": err["ideal_at_fit"],
                "generalisation_gap": cmp["generalisation"]["soft_error"]["real_gap"],
                "extra": {
                    name: {w: m["soft_error"][f"{w}_at_fit"] for w in ("real", "ideal", "gap")}
                    for name, m in cmp["sets"].items()
                    if name != "test" and "soft_error" in m
                },
                "real_dir": entry["real"],
                "ideal_dir": entry["ideal"],
            }
        )
    return points, missing


AGG_KEYS = ("fit_step", "real_error", "ideal_error")


def aggregate(exp_dir: Path, points: list[dict], margin: Margin | None = None) -> list[dict]:
    """Per (model, lr, n): the seed statistics of test soft-error (as a bootstrap report states them), their
    verdict, Holm-corrected across cells, and mean +- sd of the other figures; sorted by model, lr, n."""
    by_cell = defaultdict(list)
    for p in points:
        by_cell[(p["model"], p["lr"] or 0.0, p["n"])].append(p)
    groups = []
    for (model, lr, n), cell in sorted(by_cell.items()):
        pairs = [(load_run(exp_dir / p["real_dir"]), load_run(exp_dir / p["ideal_dir"])) for p in cell]
        stats = seed_statistics(seed_curves(pairs, "test", "soft_error"), margin)
        group = {
            "model": model,
            "lr": lr or None,
            "n": n,
            "runs": len(cell),
            "fitted": stats.fitted,
            "statistics": stats.to_dict(),
            "verdict": verdict(stats).to_dict(),
            "real": _ci(stats.real),
            "ideal": _ci(stats.ideal),
            "gap": _gap(stats),
            "generalisation_gap": stats.generalisation_gap.to_dict(),
            "test_se": sampling_se((stats.real.mean + stats.ideal.mean) / 2, pairs[0][0].rows[-1].get("test/count")),
        }
        for key in AGG_KEYS:
            group[key] = mean_sd([p[key] for p in cell]).to_dict()
        extras = sorted({name for p in cell for name in p["extra"]})
        group["extra"] = {
            name: {
                w: mean_sd([p["extra"][name][w] for p in cell if name in p["extra"]]).to_dict()
                for w in ("real", "ideal", "gap")
            }
            for name in extras
        }
        groups.append(group)
    return corrected(groups)


def _ci(stat: MeanSd) -> dict:
    """mean, sd and the half-width of the t-quantile 95% CI of the mean over seeds (nan with one seed)."""
    half = scipy_stats.t.ppf(0.975, stat.count - 1) * stat.sd / math.sqrt(stat.count) if stat.count > 1 else math.nan
    return {**stat.to_dict(), "ci_half": half}


def _gap(st) -> dict:
    g = st.gap
    if g is None:
        return {
            "mean": st.per_seed_gap[0] if st.per_seed_gap else math.nan,
            "sd": math.nan,
            "se": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "p_value": math.nan,
            "tost_p": math.nan,
        }
    return {
        "mean": g.mean,
        "sd": g.sd,
        "se": g.se,
        "ci_low": g.ci_low,
        "ci_high": g.ci_high,
        "p_value": g.p_value,
        "tost_p": g.tost_p,
    }


def corrected(groups: list[dict], alpha: float = 0.05) -> list[dict]:
    """Each cell's outcome from Holm-adjusted p-values over the cells with a test (the difference p-values
    and the TOST p-values are two families, each corrected on its own)."""
    tested = [g for g in groups if math.isfinite(g["gap"]["p_value"])]
    p_adj = holm([g["gap"]["p_value"] for g in tested]) if tested else []
    with_margin = [g for g in tested if math.isfinite(g["gap"]["tost_p"])]
    tost_adj = dict(zip(map(id, with_margin), holm([g["gap"]["tost_p"] for g in with_margin]) if with_margin else []))
    for g, p in zip(tested, p_adj):
        tost = tost_adj.get(id(g), math.nan)
        g["gap"].update(p_holm=p, tost_p_holm=tost)
        g["outcome"] = outcome_of(p, tost, alpha)
    for g in groups:
        g.setdefault("outcome", "no-verdict")
    return groups


def scatter_figure(path: Path, groups: list[dict]) -> Path:
    """The paper's Fig. 2: Real vs Ideal test soft-error at T(n), one point per (model, lr, n) (mean over
    seeds); the bar is the 95% CI of the paired gap, so a bar that crosses y = x is a gap not told apart
    from 0; colour = architecture, marker = learning rate."""
    models = sorted({g["model"] for g in groups})
    lrs = sorted({g["lr"] or 0.0 for g in groups})
    lines = []
    for mi, model in enumerate(models):
        for li, lr in enumerate(lrs):
            cell = [g for g in groups if g["model"] == model and (g["lr"] or 0.0) == lr]
            if cell:
                lines.append(
                    Line(
                        np.array([g["ideal"]["mean"] for g in cell]),
                        np.array([g["real"]["mean"] for g in cell]),
                        f"{model}, lr {lr:g}",
                        ARCH_COLORS[mi % len(ARCH_COLORS)],
                        "none",
                        MARKERS[li % len(MARKERS)],
                        yerr=np.array([(g["gap"]["ci_high"] - g["gap"]["ci_low"]) / 2 for g in cell]),
                    )
                )
    panel = Panel(
        tuple(lines),
        "Real World test soft-error at T(n)",
        xlabel="Ideal World test soft-error at T(n)",
        logx=False,
        diagonal=True,
        title="Real vs Ideal at T(n)",
    )
    return save_panels(path, [panel])


def learning_curve_figure(path: Path, groups: list[dict]) -> Path:
    """Per model: L(n) (Real, solid) beside L~(T(n)) (Ideal read at T(n), dashed), mean and 95% CI over seeds."""
    panels = []
    for model, lr in sorted({(g["model"], g["lr"] or 0.0) for g in groups}):
        cell = [g for g in groups if (g["model"], g["lr"] or 0.0) == (model, lr)]
        ns = np.array([g["n"] for g in cell], dtype=float)
        lines = tuple(
            Line(
                ns,
                np.array([g[world]["mean"] for g in cell]),
                label,
                color,
                style,
                marker,
                yerr=np.array([g[world]["ci_half"] for g in cell]),
            )
            for world, color, style, marker, label in (
                ("real", REAL_COLOR, "-", "o", "$L(n)$: Real at T(n)"),
                ("ideal", IDEAL_COLOR, "--", "s", r"$\tilde L(T(n))$: Ideal at T(n)"),
            )
        )
        panels.append(
            Panel(
                lines,
                "test soft-error",
                xlabel="n (Real World train samples)",
                title=rf"{model}, lr {lr:g}: $L(n)$ vs $\tilde L(T(n))$",
                xticks=tuple(ns),
            )
        )
    return save_panels(path, panels)


def sweep_headline(exp_dir: Path, spec: dict, points: list[dict], groups: list[dict]) -> dict:
    gaps = [abs(p["gap"]) for p in points if math.isfinite(p["gap"])]
    worst = max(points, key=lambda p: abs(p["gap"]) if math.isfinite(p["gap"]) else -1, default=None)
    return {
        "kind": "sweep",
        "dir": str(exp_dir),
        "report": str(exp_dir / REPORT),
        "runs_total": len(spec["runs"]),
        "runs_done": len(points),
        "never_fit": sum(p["fit_step"] is None for p in points),
        "margin": Margin.from_dict(spec.get("margin")).describe(),
        "mean_abs_gap": float(np.mean(gaps)) if gaps else math.nan,
        "max_abs_gap": max(gaps) if gaps else math.nan,
        "worst": None if worst is None else {k: worst[k] for k in ("model", "lr", "n", "seed", "gap")},
        "verdicts": {
            code: sum(g["outcome"] == code for g in groups)
            for code in (*OUTCOMES, "no-verdict")
            if any(g["outcome"] == code for g in groups)
        },
        "groups": [
            {
                "model": g["model"],
                "lr": g["lr"],
                "n": g["n"],
                "seeds": g["runs"],
                "real": g["real"]["mean"],
                "ideal": g["ideal"]["mean"],
                **{f"gap_{k}" if k != "mean" else "gap": v for k, v in g["gap"].items()},
                "generalisation_gap": g["generalisation_gap"]["mean"],
                "verdict": g["outcome"],
            }
            for g in groups
        ],
    }


VERDICT_WORDS = {
    "no-verdict": "one seed, no test possible",
    "inconclusive": "inconclusive (neither a difference nor equivalence shown)",
    "differ": "differ (gap's CI excludes 0, not within the margin)",
    "equivalent": "equivalent within the margin",
    "differ-within-margin": "differ, but within the margin",
}


def sweep_verdict(headline: dict) -> str:
    done = headline["runs_done"]
    if not done:
        return "No run of the grid has finished yet: re-run the same `train sweep` command."
    worst = headline["worst"]
    cells = sum(headline["verdicts"].values())
    counts = "; ".join(f"{count} {VERDICT_WORDS[code]}" for code, count in headline["verdicts"].items())
    text = (
        f"{done} of {headline['runs_total']} runs finished, in {cells} (model, lr, n) "
        f"cell{'s' if cells != 1 else ''}, each tested over its seeds (paired t-test of the gap at the read-out, "
        f"and TOST against the declared margin, {headline['margin']}), with Holm's correction across the "
        f"cells (family-wise error 5% for each test): {counts}. Per run, |Real - Ideal| test soft-error at "
        f"its own T(n) (or its last step) averages {fmt(headline['mean_abs_gap'], 3)} and is at most "
        f"{fmt(headline['max_abs_gap'], 3)} (model {worst['model']}, n = {worst['n']:,}, seed {worst['seed']})."
    )
    if headline["never_fit"]:
        count = headline["never_fit"]
        text += (
            f" {count} {'run' if count == 1 else 'runs'} never reached the fit threshold (T(n) "
            "undefined): such seeds are left out of a cell where others fit, and read at the end otherwise."
        )
    return text


def _pm(stat: dict, se: float = math.nan, sign: bool = False) -> str:
    sd = stat.get("sd")
    text = fmt_se(stat.get("mean"), se, sign)
    return text + (f" ± {fmt_se(sd, se)}" if sd is not None and math.isfinite(sd) else "")


def sweep_markdown(spec, points, missing, groups, figures, headline, notes: tuple = ()) -> str:
    """`notes`: sentences under the result (runs of mixed provenance)."""
    config = spec.get("config", {})
    lines = [
        "# Deep Bootstrap sweep: Real World vs Ideal World",
        "",
        f"Data `{config.get('data')}`, models {', '.join(f'`{m}`' for m in spec['models'])}, "
        f"n in {{{', '.join(f'{n:,}' for n in spec['ns'])}}}, lr in "
        f"{{{', '.join(f'{lr:g}' for lr in spec.get('lrs') or [config.get('lr') or 0])}}}, seeds {spec['seeds']}, "
        f"{fmt_int(config.get('steps'))} SGD steps at batch {fmt_int(config.get('batch_size'))}. One "
        "Ideal run per (model, lr, seed) serves every n: the Ideal World does not depend on n.",
        "",
        "## Result",
        "",
        sweep_verdict(headline),
        "",
    ]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    lines += [f"![{f.stem}]({f.name})" for f in figures] + [""]
    lines += [
        "## Each cell over its seeds (test soft-error at the read-out)",
        "",
        "| model | lr | n | runs (fit) | T(n) | L(n): Real | L~(T(n)): Ideal | test-set SE | gap [95% CI] | "
        "p (Holm) | TOST p (Holm) | Real test - train | Real error | Ideal error | verdict (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        gap, se = g["gap"], g["gap"]["se"]
        lines.append(
            f"| {g['model']} | {g['lr'] or 0:g} | {g['n']:,} | {g['runs']} ({g['fitted']}) | "
            f"{_pm(g['fit_step'], 100)} | {_pm(g['real'], se)} | {_pm(g['ideal'], se)} | "
            f"{fmt(g['test_se'], 4) if math.isfinite(g['test_se']) else 'n/a'} | "
            f"{fmt_se(gap['mean'], se, True)} {fmt_ci(gap['ci_low'], gap['ci_high'], se)} | "
            f"{_p(gap.get('p_holm'))} | {_p(gap.get('tost_p_holm'))} | "
            f"{_pm(g['generalisation_gap'], se, True)} | {_pm(g['real_error'], se)} | "
            f"{_pm(g['ideal_error'], se)} | {g['outcome']} |"
        )
    lines += [
        "",
        "Mean ± sd over seeds, rounded to the gap's SE. Test-set SE: the sampling SE of one seed's "
        "Real or Ideal figure over the N test examples, sqrt(p (1 - p) / N) (an upper bound for "
        "soft-error). The CI is each cell's own (uncorrected) paired t interval; p and TOST p are Holm-adjusted across the cells, and the verdict uses them. Each "
        "cell is worded in full as in a bootstrap report in results.json (`groups[].verdict`).",
        "",
    ]
    lines += _extra_table(groups) + _points_table(points)
    if missing:
        lines += [
            "## Not finished",
            "",
            *[f"- {m['model']}, n = {m['n']:,}, seed {m['seed']}: `{m['real']}`, `{m['ideal']}`" for m in missing],
            "",
        ]
    return "\n".join(lines)


def _p(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else "< 0.001" if value < 0.001 else f"{value:.2g}"


def _extra_table(groups: list[dict]) -> list[str]:
    rows = [(g, name, e) for g in groups for name, e in g["extra"].items()]
    if not rows:
        return []
    lines = [
        "## Extra test sets (soft-error at T(n), mean ± sd)",
        "",
        "| model | n | test set | Real | Ideal | gap |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {g['model']} | {g['n']:,} | {name} | {_pm(e['real'], 1e-3)} | {_pm(e['ideal'], 1e-3)} | "
        f"{_pm(e['gap'], 1e-3, True)} |"
        for g, name, e in rows
    ]
    return lines + [""]


def _points_table(points: list[dict]) -> list[str]:
    lines = [
        "## Every run (test soft-error)",
        "",
        "| model | lr | n | seed | T(n) | Real at T(n) | Ideal at T(n) | gap | Real run | Ideal run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (p["model"], p["lr"] or 0.0, p["n"], p["seed"])):
        t = fmt_int(p["fit_step"]) if p["fit_step"] is not None else f"never (step {p['ref_step']:,} used)"
        lines.append(
            f"| {p['model']} | {p['lr'] or 0:g} | {p['n']:,} | {p['seed']} | {t} | {fmt(p['real'])} | {fmt(p['ideal'])} | "
            f"{fmt_gap(p['gap'])} | `{p['real_dir']}` | `{p['ideal_dir']}` |"
        )
    return lines + [""]


def format_sweep_headline(headline: dict) -> str:
    out = [f"report: {headline['report']}", "  " + sweep_verdict(headline)]
    for g in headline["groups"]:
        se = g.get("gap_se", math.nan)
        out.append(
            f"  {g['model']} lr={g['lr'] or 0:g} n={g['n']:,}: L(n) {fmt_se(g['real'], se)}  L~(T(n)) "
            f"{fmt_se(g['ideal'], se)}  gap {fmt_se(g['gap'], se, True)} "
            f"{fmt_ci(g.get('gap_ci_low'), g.get('gap_ci_high'), se)}  verdict (Holm) {g['verdict']}"
        )
    return "\n".join(out)
