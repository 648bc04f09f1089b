"""The sweep report: Real vs Ideal over a grid of n x models x lrs x seeds (the paper's Fig. 2 and L(n)).

Reads `<exp>/experiment.json` (written by `train.experiments.sweep.sweep`, which lists every run of the grid)
and each run's saved metrics; writes `report.md`, `scatter.png`, `learning_curve.png` and
`results.json` into `<exp>`. Runs not finished yet are listed and left out of the figures.

- scatter: Real vs Ideal test soft-error at T(n) with y = x (Fig. 2): one point per (model, lr, n),
  the mean over seeds (+- sd bars); colour = architecture, marker = learning rate, as the paper draws it;
- learning curve: L(n) = Real test soft-error at T(n) beside L~(T(n)) = Ideal test soft-error read
  at the same T(n): the Deep Bootstrap identity says L(n) ~= L~(T(n)). Mean +- sd over seeds.
Each (model, lr, n) cell is judged over its seeds exactly as a bootstrap report judges its seeds
(train/reporting/statistics.py: gap vs noise floor vs generalisation gap). Runs whose Real World never
fit use their last step (said in the tables).

    python -m train report EXP_DIR
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from shards.jsonio import write_text_atomic
from train.reporting.experiment_file import REPORT, read_experiment, write_results
from train.reporting.formatting import fmt, fmt_gap, fmt_int
from train.reporting.plots import EXTRA_COLORS, IDEAL_COLOR, MARKERS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.results import compare_worlds, json_safe, load_run, seed_curves
from train.reporting.statistics import mean_sd, pm, seed_statistics, verdict
from train.run import runfolder

ARCH_COLORS = (REAL_COLOR, IDEAL_COLOR) + EXTRA_COLORS


def render_sweep(exp_dir: str | Path) -> dict:
    exp_dir = Path(exp_dir)
    spec = read_experiment(exp_dir)
    points, missing = collect_points(exp_dir, spec["runs"], spec.get("config", {}).get("lr"))
    groups = aggregate(exp_dir, points)
    figures = []
    if points:
        figures = [scatter_figure(exp_dir / "scatter.png", groups),
                   learning_curve_figure(exp_dir / "learning_curve.png", groups)]
    headline = sweep_headline(exp_dir, spec, points, groups)
    write_text_atomic(exp_dir / REPORT, sweep_markdown(spec, points, missing, groups, figures, headline))
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
        points.append({
            "model": entry["model"], "lr": entry.get("lr", lr), "n": entry["n"], "seed": entry["seed"],
            "fit_step": cmp["fit_step"], "ref_step": cmp["ref_step"],
            "real": soft["real_at_fit"], "ideal": soft["ideal_at_fit"], "gap": soft["gap_at_fit"],
            "max_abs_gap": soft["max_abs_gap"],
            "real_error": err["real_at_fit"], "ideal_error": err["ideal_at_fit"],
            "generalisation_gap": cmp["generalisation"]["soft_error"]["real_gap"],
            "extra": {name: {w: m["soft_error"][f"{w}_at_fit"] for w in ("real", "ideal", "gap")}
                      for name, m in cmp["sets"].items() if name != "test" and "soft_error" in m},
            "real_dir": entry["real"], "ideal_dir": entry["ideal"],
        })
    return points, missing


AGG_KEYS = ("fit_step", "real_error", "ideal_error")


def aggregate(exp_dir: Path, points: list[dict]) -> list[dict]:
    """Per (model, lr, n): the seed statistics of test soft-error (as a bootstrap report states them),
    their verdict, and mean +- sd of the other figures; sorted by model, lr, n."""
    by_cell = defaultdict(list)
    for p in points:
        by_cell[(p["model"], p["lr"] or 0.0, p["n"])].append(p)
    groups = []
    for (model, lr, n), cell in sorted(by_cell.items()):
        pairs = [(load_run(exp_dir / p["real_dir"]), load_run(exp_dir / p["ideal_dir"])) for p in cell]
        stats = seed_statistics(seed_curves(pairs, "test", "soft_error"))
        group = {"model": model, "lr": lr or None, "n": n, "runs": len(cell), "fitted": stats["fitted"],
                 "statistics": stats, "verdict": verdict(stats),
                 **{key: stats[key] for key in ("real", "ideal", "gap", "generalisation_gap")}}
        for key in AGG_KEYS:
            mean, sd, _ = mean_sd([p[key] for p in cell])
            group[key] = {"mean": mean, "sd": sd}
        extras = sorted({name for p in cell for name in p["extra"]})
        group["extra"] = {name: {w: dict(zip(("mean", "sd"), mean_sd(
            [p["extra"][name][w] for p in cell if name in p["extra"]])[:2])) for w in ("real", "ideal", "gap")}
            for name in extras}
        groups.append(group)
    return groups


def scatter_figure(path: Path, groups: list[dict]) -> Path:
    """The paper's Fig. 2: Real vs Ideal test soft-error at T(n), one point per (model, lr, n) (mean over
    seeds, +- sd bars of the Real World); colour = architecture, marker = learning rate."""
    models = sorted({g["model"] for g in groups})
    lrs = sorted({g["lr"] or 0.0 for g in groups})
    lines = []
    for mi, model in enumerate(models):
        for li, lr in enumerate(lrs):
            cell = [g for g in groups if g["model"] == model and (g["lr"] or 0.0) == lr]
            if cell:
                lines.append(Line(np.array([g["ideal"]["mean"] for g in cell]),
                                  np.array([g["real"]["mean"] for g in cell]), f"{model}, lr {lr:g}",
                                  ARCH_COLORS[mi % len(ARCH_COLORS)], "none", MARKERS[li % len(MARKERS)],
                                  yerr=np.array([g["real"]["sd"] for g in cell])))
    panel = Panel(tuple(lines), "Real World test soft-error at T(n)", xlabel="Ideal World test soft-error at T(n)",
                  logx=False, diagonal=True, title="Real vs Ideal at T(n)")
    return save_panels(path, [panel])


def learning_curve_figure(path: Path, groups: list[dict]) -> Path:
    """Per model: L(n) (Real, solid) beside L~(T(n)) (Ideal read at T(n), dashed), mean +- std."""
    panels = []
    for model, lr in sorted({(g["model"], g["lr"] or 0.0) for g in groups}):
        cell = [g for g in groups if (g["model"], g["lr"] or 0.0) == (model, lr)]
        ns = np.array([g["n"] for g in cell], dtype=float)
        lines = tuple(
            Line(ns, np.array([g[world]["mean"] for g in cell]), label, color, style, marker,
                 yerr=np.array([g[world]["sd"] for g in cell]))
            for world, color, style, marker, label in (
                ("real", REAL_COLOR, "-", "o", "$L(n)$: Real at T(n)"),
                ("ideal", IDEAL_COLOR, "--", "s", r"$\tilde L(T(n))$: Ideal at T(n)")))
        panels.append(Panel(lines, "test soft-error", xlabel="n (Real World train samples)",
                            title=rf"{model}, lr {lr:g}: $L(n)$ vs $\tilde L(T(n))$", xticks=tuple(ns)))
    return save_panels(path, panels)


def sweep_headline(exp_dir: Path, spec: dict, points: list[dict], groups: list[dict]) -> dict:
    gaps = [abs(p["gap"]) for p in points if math.isfinite(p["gap"])]
    worst = max(points, key=lambda p: abs(p["gap"]) if math.isfinite(p["gap"]) else -1, default=None)
    return {
        "kind": "sweep", "dir": str(exp_dir), "report": str(exp_dir / REPORT),
        "runs_total": len(spec["runs"]), "runs_done": len(points),
        "never_fit": sum(p["fit_step"] is None for p in points),
        "mean_abs_gap": float(np.mean(gaps)) if gaps else math.nan,
        "max_abs_gap": max(gaps) if gaps else math.nan,
        "worst": None if worst is None else {k: worst[k] for k in ("model", "lr", "n", "seed", "gap")},
        "verdicts": {code: sum(g["verdict"]["code"] == code for g in groups)
                     for code in sorted({g["verdict"]["code"] for g in groups})},
        "groups": [{"model": g["model"], "lr": g["lr"], "n": g["n"], "seeds": g["runs"], "real": g["real"]["mean"],
                    "ideal": g["ideal"]["mean"], "gap": g["gap"]["mean"], "gap_sd": g["gap"]["sd"],
                    "noise_floor": g["statistics"]["noise_floor"],
                    "generalisation_gap": g["generalisation_gap"]["mean"], "verdict": g["verdict"]["code"]}
                   for g in groups],
    }


VERDICT_WORDS = {
    "no-verdict": "one seed, no verdict possible",
    "unresolved": "gap and generalisation gap both within the noise floor",
    "within-noise": "gap within the noise floor, generalisation gap above it",
    "below-generalisation-gap": "gap above the noise floor but below the generalisation gap",
    "not-small": "gap above the noise floor and at least the generalisation gap",
}


def sweep_verdict(headline: dict) -> str:
    done = headline["runs_done"]
    if not done:
        return "No run of the grid has finished yet: re-run the same `train sweep` command."
    worst = headline["worst"]
    cells = sum(headline["verdicts"].values())
    counts = "; ".join(f"{count} {VERDICT_WORDS[code]}" for code, count in headline["verdicts"].items())
    text = (f"{done} of {headline['runs_total']} runs finished, in {cells} (model, lr, n) "
            f"cell{'s' if cells != 1 else ''}, each judged over its seeds as a bootstrap report judges them "
            f"(gap at T(n) vs the seed-to-seed noise floor vs the generalisation gap): {counts}. Per run, "
            f"|Real - Ideal| test soft-error at T(n) averages {fmt(headline['mean_abs_gap'])} and is at most "
            f"{fmt(headline['max_abs_gap'])} (model {worst['model']}, n = {worst['n']:,}, seed {worst['seed']}).")
    if headline["never_fit"]:
        count = headline["never_fit"]
        text += (f" {count} {'run' if count == 1 else 'runs'} never reached the fit threshold (T(n) "
                 "undefined): those points use the last common step.")
    return text


def sweep_markdown(spec, points, missing, groups, figures, headline) -> str:
    config = spec.get("config", {})
    lines = ["# Deep Bootstrap sweep: Real World vs Ideal World", "",
             f"Data `{config.get('data')}`, models {', '.join(f'`{m}`' for m in spec['models'])}, "
             f"n in {{{', '.join(f'{n:,}' for n in spec['ns'])}}}, lr in "
             f"{{{', '.join(f'{lr:g}' for lr in spec.get('lrs') or [config.get('lr') or 0])}}}, seeds {spec['seeds']}, "
             f"{fmt_int(config.get('steps'))} SGD steps at batch {fmt_int(config.get('batch_size'))}. One "
             "Ideal run per (model, lr, seed) serves every n: the Ideal World does not depend on n.", "",
             "## Result", "", sweep_verdict(headline), ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures] + [""]
    lines += ["## Mean ± sd over seeds (test soft-error unless stated; at T(n))", "",
              "| model | lr | n | runs (fit) | T(n) | L(n): Real | L~(T(n)): Ideal | gap | noise floor | "
              "Real test - train | max \\|gap\\| in [n / batch, T(n)] | Real error | Ideal error | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        st = g["statistics"]
        lines.append(f"| {g['model']} | {g['lr'] or 0:g} | {g['n']:,} | {g['runs']} ({g['fitted']}) | "
                     f"{pm(g['fit_step'], 0)} | {pm(g['real'])} | {pm(g['ideal'])} | {pm(g['gap'], sign=True)} | "
                     f"{fmt(st['noise_floor'])} | {pm(g['generalisation_gap'], sign=True)} | "
                     f"{fmt(st['window']['max_abs'])} | {pm(g['real_error'])} | {pm(g['ideal_error'])} | "
                     f"{g['verdict']['code']} |")
    lines += ["", "Noise floor: the larger sd across seeds of the two worlds at the same step (the mean T(n)); "
              "the verdict column is `statistics.verdict`, worded in full in a bootstrap report.", ""]
    lines += _extra_table(groups) + _points_table(points)
    if missing:
        lines += ["## Not finished", "", *[f"- {m['model']}, n = {m['n']:,}, seed {m['seed']}: `{m['real']}`, "
                                           f"`{m['ideal']}`" for m in missing], ""]
    return "\n".join(lines)


def _extra_table(groups: list[dict]) -> list[str]:
    rows = [(g, name, e) for g in groups for name, e in g["extra"].items()]
    if not rows:
        return []
    lines = ["## Extra test sets (soft-error at T(n), mean ± sd)", "",
             "| model | n | test set | Real | Ideal | gap |", "|---|---|---|---|---|---|"]
    lines += [f"| {g['model']} | {g['n']:,} | {name} | {pm(e['real'])} | {pm(e['ideal'])} | {pm(e['gap'], sign=True)} |"
              for g, name, e in rows]
    return lines + [""]


def _points_table(points: list[dict]) -> list[str]:
    lines = ["## Every run (test soft-error)", "",
             "| model | lr | n | seed | T(n) | Real at T(n) | Ideal at T(n) | gap | Real run | Ideal run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["model"], p["lr"] or 0.0, p["n"], p["seed"])):
        t = fmt_int(p["fit_step"]) if p["fit_step"] is not None else f"never (step {p['ref_step']:,} used)"
        lines.append(f"| {p['model']} | {p['lr'] or 0:g} | {p['n']:,} | {p['seed']} | {t} | {fmt(p['real'])} | {fmt(p['ideal'])} | "
                     f"{fmt_gap(p['gap'])} | `{p['real_dir']}` | `{p['ideal_dir']}` |")
    return lines + [""]


def format_sweep_headline(headline: dict) -> str:
    out = [f"report: {headline['report']}", "  " + sweep_verdict(headline)]
    for g in headline["groups"]:
        out.append(f"  {g['model']} lr={g['lr'] or 0:g} n={g['n']:,}: L(n) {fmt(g['real'])}  L~(T(n)) "
                   f"{fmt(g['ideal'])}  gap {fmt_gap(g['gap'])}  noise floor {fmt(g['noise_floor'])}  "
                   f"verdict {g['verdict']}")
    return "\n".join(out)
