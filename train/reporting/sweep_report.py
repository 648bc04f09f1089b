"""The sweep report: Real vs Ideal over a grid of n x models x seeds (the paper's Fig. 2 and L(n)).

Reads `<exp>/experiment.json` (written by `train.experiments.sweep.sweep`, which lists every run of the grid)
and each run's saved metrics; writes `report.md`, `scatter.png`, `learning_curve.png` and
`results.json` into `<exp>`. Runs not finished yet are listed and left out of the figures.

- scatter: Real vs Ideal test soft-error at T(n), one point per run, with y = x (Fig. 2);
- learning curve: L(n) = Real test soft-error at T(n) beside L~(T(n)) = Ideal test soft-error read
  at the same T(n): the Deep Bootstrap identity says L(n) ~= L~(T(n)). Mean +- std over seeds.
Runs whose Real World never fit use their last step (said in the tables).

    python -m train report EXP_DIR
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from shards.jsonio import write_text_atomic
from train.reporting.experiment_file import REPORT, read_experiment, write_results
from train.reporting.formatting import SMALL_GAP, fmt, fmt_gap, fmt_int, is_small
from train.reporting.plots import IDEAL_COLOR, MARKERS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.results import compare_worlds, json_safe, load_run, mean_std
from train.run import runfolder

NS_CMAP = "viridis"


def render_sweep(exp_dir: str | Path) -> dict:
    exp_dir = Path(exp_dir)
    spec = read_experiment(exp_dir)
    points, missing = collect_points(exp_dir, spec["runs"])
    groups = aggregate(points)
    figures = []
    if points:
        figures = [scatter_figure(exp_dir / "scatter.png", points),
                   learning_curve_figure(exp_dir / "learning_curve.png", groups)]
    headline = sweep_headline(exp_dir, spec, points, groups)
    write_text_atomic(exp_dir / REPORT, sweep_markdown(spec, points, missing, groups, figures, headline))
    write_results(exp_dir, {"headline": headline, "points": points, "groups": groups})
    return json_safe(headline)


def collect_points(exp_dir: Path, runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """One point per (model, n, seed) whose Real and Ideal runs have both finished."""
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
            "model": entry["model"], "n": entry["n"], "seed": entry["seed"],
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


AGG_KEYS = ("fit_step", "real", "ideal", "gap", "max_abs_gap", "real_error", "ideal_error",
            "generalisation_gap")


def aggregate(points: list[dict]) -> list[dict]:
    """Mean, std (over seeds) and count of each figure, per (model, n), sorted by model then n."""
    by_cell = defaultdict(list)
    for p in points:
        by_cell[(p["model"], p["n"])].append(p)
    groups = []
    for (model, n), cell in sorted(by_cell.items()):
        group = {"model": model, "n": n, "runs": len(cell),
                 "fitted": sum(p["fit_step"] is not None for p in cell)}
        for key in AGG_KEYS:
            mean, std, _ = mean_std([p[key] for p in cell])
            group[key] = {"mean": mean, "std": std}
        extras = sorted({name for p in cell for name in p["extra"]})
        group["extra"] = {name: {w: dict(zip(("mean", "std"), mean_std(
            [p["extra"][name][w] for p in cell if name in p["extra"]])[:2])) for w in ("real", "ideal", "gap")}
            for name in extras}
        groups.append(group)
    return groups


def scatter_figure(path: Path, points: list[dict]) -> Path:
    """The paper's Fig. 2: Real vs Ideal test soft-error at T(n); colour = n, marker = model."""
    import matplotlib  # deferred: heavy (~0.5 s); only drawing a figure needs it

    ns = sorted({p["n"] for p in points})
    models = sorted({p["model"] for p in points})
    cmap = matplotlib.colormaps[NS_CMAP]
    lines = []
    for mi, model in enumerate(models):
        for ni, n in enumerate(ns):
            cell = [p for p in points if p["model"] == model and p["n"] == n]
            if cell:
                color = matplotlib.colors.to_hex(cmap(ni / max(1, len(ns) - 1) * 0.85))
                lines.append(Line(np.array([p["ideal"] for p in cell]), np.array([p["real"] for p in cell]),
                                  f"{model}, n = {n:,}", color, "none", MARKERS[mi % len(MARKERS)]))
    panel = Panel(tuple(lines), "Real World test soft-error at T(n)", xlabel="Ideal World test soft-error at T(n)",
                  logx=False, diagonal=True, title="Real vs Ideal at T(n)")
    return save_panels(path, [panel])


def learning_curve_figure(path: Path, groups: list[dict]) -> Path:
    """Per model: L(n) (Real, solid) beside L~(T(n)) (Ideal read at T(n), dashed), mean +- std."""
    panels = []
    for model in sorted({g["model"] for g in groups}):
        cell = [g for g in groups if g["model"] == model]
        ns = np.array([g["n"] for g in cell], dtype=float)
        lines = tuple(
            Line(ns, np.array([g[world]["mean"] for g in cell]), label, color, style, marker,
                 yerr=np.array([g[world]["std"] for g in cell]))
            for world, color, style, marker, label in (
                ("real", REAL_COLOR, "-", "o", "$L(n)$: Real at T(n)"),
                ("ideal", IDEAL_COLOR, "--", "s", r"$\tilde L(T(n))$: Ideal at T(n)")))
        panels.append(Panel(lines, "test soft-error", xlabel="n (Real World train samples)",
                            title=rf"{model}: $L(n)$ vs $\tilde L(T(n))$", xticks=tuple(ns)))
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
        "worst": None if worst is None else {k: worst[k] for k in ("model", "n", "seed", "gap")},
        "small_gap": SMALL_GAP,
        "runs_small": sum(is_small(g) for g in gaps),
        "groups": [{"model": g["model"], "n": g["n"], "real": g["real"]["mean"], "ideal": g["ideal"]["mean"],
                    "gap": g["gap"]["mean"]} for g in groups],
    }


def _ms(stat: dict, digits: int = 4) -> str:
    """`mean ± std`; the std is left out for a single seed."""
    mean, std = stat["mean"], stat["std"]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return fmt(mean, digits) + ("" if std is None or not math.isfinite(std) else f" ± {fmt(std, digits)}")


def sweep_verdict(headline: dict) -> str:
    done = headline["runs_done"]
    if not done:
        return "No run of the grid has finished yet: re-run the same `train sweep` command."
    worst = headline["worst"]
    text = (f"{done} of {headline['runs_total']} runs finished. At T(n), |Real - Ideal| test soft-error "
            f"averages {fmt(headline['mean_abs_gap'])} and is at most {fmt(headline['max_abs_gap'])} "
            f"(model {worst['model']}, n = {worst['n']:,}, seed {worst['seed']}); "
            f"{headline['runs_small']} of {done} runs are within the {SMALL_GAP} we call small.")
    if headline["never_fit"]:
        count = headline["never_fit"]
        text += (f" {count} {'run' if count == 1 else 'runs'} never reached the fit threshold (T(n) "
                 "undefined): those points use the last common step.")
    return text


def sweep_markdown(spec, points, missing, groups, figures, headline) -> str:
    config = spec.get("config", {})
    lines = ["# Deep Bootstrap sweep: Real World vs Ideal World", "",
             f"Data `{config.get('data')}`, models {', '.join(f'`{m}`' for m in spec['models'])}, "
             f"n in {{{', '.join(f'{n:,}' for n in spec['ns'])}}}, seeds {spec['seeds']}, "
             f"{fmt_int(config.get('steps'))} SGD steps at batch {fmt_int(config.get('batch_size'))}. One "
             "Ideal run per (model, seed) serves every n: the Ideal World does not depend on n.", "",
             "## Result", "", sweep_verdict(headline), ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures] + [""]
    lines += ["## Mean ± std over seeds (test soft-error unless stated; at T(n))", "",
              "| model | n | runs (fit) | T(n) | L(n): Real | L~(T(n)): Ideal | gap | max \\|gap\\|, t ≤ T(n) "
              "| Real error | Ideal error | Real test - train |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        lines.append(f"| {g['model']} | {g['n']:,} | {g['runs']} ({g['fitted']}) | {_ms(g['fit_step'], 0)} | "
                     f"{_ms(g['real'])} | {_ms(g['ideal'])} | {_ms(g['gap'])} | {_ms(g['max_abs_gap'])} | "
                     f"{_ms(g['real_error'])} | {_ms(g['ideal_error'])} | {_ms(g['generalisation_gap'])} |")
    lines += [""] + _extra_table(groups) + _points_table(points)
    if missing:
        lines += ["## Not finished", "", *[f"- {m['model']}, n = {m['n']:,}, seed {m['seed']}: `{m['real']}`, "
                                           f"`{m['ideal']}`" for m in missing], ""]
    return "\n".join(lines)


def _extra_table(groups: list[dict]) -> list[str]:
    rows = [(g, name, e) for g in groups for name, e in g["extra"].items()]
    if not rows:
        return []
    lines = ["## Extra test sets (soft-error at T(n), mean ± std)", "",
             "| model | n | test set | Real | Ideal | gap |", "|---|---|---|---|---|---|"]
    lines += [f"| {g['model']} | {g['n']:,} | {name} | {_ms(e['real'])} | {_ms(e['ideal'])} | {_ms(e['gap'])} |"
              for g, name, e in rows]
    return lines + [""]


def _points_table(points: list[dict]) -> list[str]:
    lines = ["## Every run (test soft-error)", "",
             "| model | n | seed | T(n) | Real at T(n) | Ideal at T(n) | gap | Real run | Ideal run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["model"], p["n"], p["seed"])):
        t = fmt_int(p["fit_step"]) if p["fit_step"] is not None else f"never (step {p['ref_step']:,} used)"
        lines.append(f"| {p['model']} | {p['n']:,} | {p['seed']} | {t} | {fmt(p['real'])} | {fmt(p['ideal'])} | "
                     f"{fmt_gap(p['gap'])} | `{p['real_dir']}` | `{p['ideal_dir']}` |")
    return lines + [""]


def format_sweep_headline(headline: dict) -> str:
    out = [f"report: {headline['report']}", "  " + sweep_verdict(headline)]
    for g in headline["groups"]:
        out.append(f"  {g['model']} n={g['n']:,}: L(n) {fmt(g['real'])}  L~(T(n)) {fmt(g['ideal'])}  "
                   f"gap {fmt_gap(g['gap'])}")
    return "\n".join(out)
