"""The bootstrap report: Real World (n) vs Ideal World over K seeds of one experiment folder.

Writes `report.md`, `soft_error.png`, `gap.png` and `results.json` (every number in the report).
Markdown files in `DIR/sections/` (e.g. the demo's generator-quality figures) are appended to a
bootstrap report in name order, so they survive re-rendering.

Per test set and metric the report states, over seeds (train/reporting/statistics.py): the gap at T(n)
as mean +- sd, the seed-to-seed noise floor, the generalisation gap at T(n), and on the seed-averaged
curves the largest and time-averaged |gap| over t in [n / batch, T(n)]. The verdict compares the gap with
the noise floor and the generalisation gap (`statistics.verdict`, shared with the sweep report).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from shards.jsonio import write_text_atomic
from train.reporting.experiment_file import REPORT, read_experiment, write_results
from train.reporting.formatting import fmt, fmt_gap, fmt_int, ledger_table, runs_table
from train.reporting.plots import EXTRA_COLORS, IDEAL_COLOR, MARKERS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.results import (
    METRIC_NAMES,
    METRICS,
    RunRecord,
    config_differences,
    json_safe,
    load_run,
    seed_curves,
)
from train.reporting.statistics import SeedCurves, pm, seed_statistics, verdict


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
    stats = compare_seeds(pairs)
    config = spec.get("config") or pairs[0][0].config
    curves = seed_curves(pairs, "test", "soft_error")
    figures = [world_figure(exp_dir / "soft_error.png", pairs, stats, config),
               gap_figure(exp_dir / "gap.png", pairs, stats)]
    headline = bootstrap_headline(exp_dir, config, stats)
    text = bootstrap_markdown(exp_dir, entries, pairs, stats, config, figures, headline, curves)
    write_text_atomic(exp_dir / REPORT, text)
    write_results(exp_dir, {"headline": headline, "statistics": stats,
                            "per_seed": per_seed_rows(entries, pairs, curves)})
    return json_safe(headline)


def compare_seeds(pairs: list[tuple[RunRecord, RunRecord]]) -> dict:
    """{set: {metric: seed_statistics}} for every test set and metric both worlds of every seed logged."""
    sets = [name for name in pairs[0][0].eval_sets()
            if all(name in run.eval_sets() for pair in pairs for run in pair)]
    out = {}
    for name in sets:
        out[name] = {metric: seed_statistics(seed_curves(pairs, name, metric)) for metric in METRICS
                     if all(len(run.series(f"{name}/{metric}")[0]) and len(run.series(f"train/{metric}")[0])
                            for pair in pairs for run in pair)}
    return out


def per_seed_rows(entries: list[dict], pairs, curves: SeedCurves) -> list[dict]:
    """Each seed's T(n) and test soft-error of both worlds at it (the table under the verdict)."""
    rows = []
    for i, (entry, (real, _)) in enumerate(zip(entries, pairs)):
        fit = curves.fit_steps[i]
        ref = float(curves.steps[-1]) if fit is None else float(fit)
        r, d = np.interp(ref, curves.steps, curves.real[i]), np.interp(ref, curves.steps, curves.ideal[i])
        rows.append({"seed": entry["seed"], "fit_step": fit, "ref_step": ref, "real": float(r), "ideal": float(d),
                     "gap": float(r - d), "real_dir": entry["real"], "ideal_dir": entry["ideal"],
                     "finished": real.finished})
    return rows


def _mean_band(steps: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over seeds (rows) and, with two or more seeds, the sd band."""
    return curves.mean(axis=0), (curves.std(axis=0, ddof=1) if len(curves) > 1 else None)


def world_figure(path: Path, pairs, stats: dict, config: dict) -> Path:
    """The paper's Fig. 1: mean test soft-error vs step of both worlds +- sd over seeds, train dashed."""
    c = seed_curves(pairs, "test", "soft_error")
    ideal_train = np.array([np.interp(c.steps, *ideal.series("train/soft_error")) for _, ideal in pairs])
    lines = []
    for label, curves, color, style in (("Real test", c.real, REAL_COLOR, "-"), ("Ideal test", c.ideal, IDEAL_COLOR, "-"),
                                        ("Real train", c.real_train, REAL_COLOR, "--"),
                                        ("Ideal train", ideal_train, IDEAL_COLOR, "--")):
        mean, band = _mean_band(c.steps, curves)
        lines.append(Line(c.steps, mean, label, color, style, band=band))
    for i, name in enumerate(n for n in stats if n != "test"):
        extra = seed_curves(pairs, name, "soft_error")
        for world, curves, color in (("Real", extra.real, REAL_COLOR), ("Ideal", extra.ideal, IDEAL_COLOR)):
            lines.append(Line(extra.steps, curves.mean(axis=0), f"{world} {name}", color, "-.", MARKERS[i % len(MARKERS)]))
    soft = stats["test"]["soft_error"]
    seeds = f", mean ± sd over {soft['seeds']} seeds" if soft["seeds"] > 1 else ", one seed"
    panel = Panel(tuple(lines), "soft-error", vline=soft["ref_step"], vline_label=_fit_label(soft),
                  title=f"Real World (n = {fmt_int(config.get('n'))}) vs Ideal World{seeds}")
    return save_panels(path, [panel])


def _fit_label(stat: dict) -> str:
    return f"T(n) = {stat['ref_step']:,.0f}" if stat["fitted"] else ""


def gap_figure(path: Path, pairs, stats: dict) -> Path:
    """Real - Ideal vs step (seed-averaged, +- sd of the per-seed gaps) for each metric and test set;
    the window [n / batch, T(n)] of the 'for all t' figures shaded."""
    panels = []
    for metric in METRICS:
        lines, window = [], None
        for i, name in enumerate(stats):
            if metric not in stats[name]:
                continue
            c = seed_curves(pairs, name, metric)
            mean, band = _mean_band(c.steps, c.real - c.ideal)
            color = "black" if name == "test" else EXTRA_COLORS[i % len(EXTRA_COLORS)]
            lines.append(Line(c.steps, mean, name, color, band=band))
            window = window or stats[name][metric]["window"]
        test = stats["test"].get(metric) or stats["test"]["soft_error"]
        shade = (window["start"], window["end"]) if window and window["end"] > window["start"] else None
        panels.append(Panel(tuple(lines), f"Real - Ideal test {METRIC_NAMES[metric]}", vline=test["ref_step"],
                            vline_label=_fit_label(test), zero_line=True, shade=shade,
                            shade_label="[n / batch, T(n)]" if shade else "",
                            title=f"bootstrap gap: {METRIC_NAMES[metric]}"))
    return save_panels(path, panels)


def bootstrap_headline(exp_dir: Path, config: dict, stats: dict) -> dict:
    """The figures a console summary shows (see format_bootstrap_headline)."""
    soft = stats["test"]["soft_error"]
    judged = verdict(soft)
    return {
        "kind": "bootstrap", "dir": str(exp_dir), "report": str(exp_dir / REPORT),
        "n": config.get("n"), "model": config.get("model"), "steps": config.get("steps"),
        "seeds": soft["seeds"], "fitted": soft["fitted"],
        "fit_step": soft["fit_step"]["mean"] if soft["fitted"] else None,
        "fit_step_sd": soft["fit_step"]["sd"], "fit_threshold": config.get("fit_threshold", 0.01),
        "ref_step": soft["ref_step"],
        "real_test_soft_error": soft["real"]["mean"], "ideal_test_soft_error": soft["ideal"]["mean"],
        "gap": soft["gap"]["mean"], "gap_sd": soft["gap"]["sd"], "noise_floor": soft["noise_floor"],
        "generalisation_gap": soft["generalisation_gap"]["mean"],
        "window": soft["window"],
        "extra": {name: {"real": m["soft_error"]["real"]["mean"], "ideal": m["soft_error"]["ideal"]["mean"],
                         "gap": m["soft_error"]["gap"]["mean"], "gap_sd": m["soft_error"]["gap"]["sd"]}
                  for name, m in stats.items() if name != "test" and "soft_error" in m},
        "verdict_code": judged["code"],
        "verdict": judged["text"],
    }


def bootstrap_markdown(exp_dir, entries, pairs, stats, config, figures, headline, curves) -> str:
    lines = [f"# Deep Bootstrap: Real World (n = {fmt_int(config.get('n'))}) vs Ideal World", ""]
    lines += [_settings_line(config, entries), "", "## Result", "", _fit_sentence(headline), "",
              headline["verdict"], ""]
    lines += _notes(pairs, stats)
    lines += ["## Figures", ""]
    lines += [f"![{fig.stem}]({fig.relative_to(exp_dir).as_posix()})" for fig in figures] + [""]
    lines += ["`soft_error.png`: test soft-error of both worlds (solid) and train soft-error (dashed), mean over "
              "seeds with ± sd bands; extra test sets dash-dot; T(n) dotted. `gap.png`: seed-averaged Real - "
              "Ideal on each test set (± sd of the per-seed gaps) for soft-error, error and loss; the shaded "
              "window [n / batch, T(n)] is where the 'for all t ≤ T(n)' figures are taken (the first epoch is "
              "left out: there both worlds draw fresh samples, so they are the same random process).", ""]
    lines += seed_table(per_seed_rows(entries, pairs, curves)) + statistics_table(stats)
    runs = [(f"{world} s{e['seed']}", run) for e, pair in zip(entries, pairs) for world, run in zip(("Real", "Ideal"), pair)]
    lines += ledger_table(runs) + runs_table(exp_dir, runs)
    for section in sorted((exp_dir / "sections").glob("*.md")):
        lines += [section.read_text().rstrip(), ""]
    return "\n".join(lines)


def _settings_line(config: dict, entries: list[dict]) -> str:
    seeds = ", ".join(str(e["seed"]) for e in entries)
    return (f"Data `{config.get('data')}`, model `{config.get('model')}`, {fmt_int(config.get('steps'))} "
            f"SGD steps at batch {fmt_int(config.get('batch_size'))}, seeds {seeds}. Both worlds of a seed "
            "share one config (same model and init, optimiser, schedule, batch, augmentation, evaluation "
            "steps); only the sampler differs.")


def _fit_sentence(headline: dict) -> str:
    k, fitted, thr = headline["seeds"], headline["fitted"], headline["fit_threshold"]
    if not fitted:
        return (f"The Real World never reached train error <= {thr:.0%} (T(n) undefined): the figures 'at T(n)' "
                f"are at the last common step, {headline['ref_step']:,.0f}.")
    sd = headline["fit_step_sd"]
    spread = f" ± {sd:,.0f}" if sd is not None and np.isfinite(sd) else ""
    text = (f"T(n) = {headline['fit_step']:,.0f}{spread} (the first evaluated step with Real train error <= "
            f"{thr:.0%}; mean{' ± sd' if spread else ''} over {fitted} seed{'s' if fitted != 1 else ''}).")
    if fitted < k:
        text += f" {k - fitted} of {k} seeds never fit: they are read at the last common step."
    return text


def _notes(pairs, stats: dict) -> list[str]:
    notes = []
    for real, ideal in pairs:
        for world, run in (("Real", real), ("Ideal", ideal)):
            if not run.finished:
                notes.append(f"{run.run_dir} ({world}) has not finished (last evaluated step "
                             f"{run.last_step():,}); re-run the same command to complete it.")
        diffs = config_differences(real, ideal)
        if diffs:
            shown = ", ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in ((k, *v) for k, v in diffs.items()))
            notes.append(f"Warning: {real.run_dir} and {ideal.run_dir} differ beyond mode and folder ({shown}).")
        for run in (real, ideal):
            if (run.summary or {}).get("batchnorm") == "per-rank":
                notes.append(f"{run.run_dir}: BatchNorm statistics were per rank ({run.summary.get('world_size')} "
                             "DDP processes on CPU, where SyncBatchNorm cannot run), so each normalised "
                             "batch / world samples: not the same computation as one process.")
        ledger = (ideal.summary or {}).get("ledger") or {}
        if ledger and not ledger.get("no_reuse", True):
            notes.append(f"{ideal.run_dir} reused samples ({ledger.get('passes')} passes over the pool), "
                         "so it is not a pure Ideal World.")
    return ([f"- {note}" for note in notes] + [""]) if notes else []


def seed_table(rows: list[dict]) -> list[str]:
    lines = ["## Each seed (test soft-error at its own T(n))", "",
             "| seed | T(n) | Real | Ideal | gap | Real run | Ideal run |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        t = fmt_int(r["fit_step"]) if r["fit_step"] is not None else f"never (step {r['ref_step']:,.0f} used)"
        lines.append(f"| {r['seed']} | {t} | {fmt(r['real'])} | {fmt(r['ideal'])} | {fmt_gap(r['gap'])} | "
                     f"`{r['real_dir']}` | `{r['ideal_dir']}` |")
    return lines + [""]


def statistics_table(stats: dict) -> list[str]:
    lines = ["## Real vs Ideal on each test set (over seeds)", "",
             "| test set | metric | Real at T(n) | Ideal at T(n) | gap at T(n) | noise floor (Real, Ideal) | "
             "generalisation gap | max \\|gap\\| in window (step) | mean \\|gap\\| in window |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, metrics in stats.items():
        for metric, st in metrics.items():
            w = st["window"]
            lines.append(
                f"| {name} | {METRIC_NAMES[metric]} | {pm(st['real'])} | {pm(st['ideal'])} | {pm(st['gap'], sign=True)} | "
                f"{fmt(st['noise_floor'])} ({fmt(st['noise_real'])}, {fmt(st['noise_ideal'])}) | "
                f"{pm(st['generalisation_gap'], sign=True)} | {fmt(w['max_abs'])} ({fmt_int(w['max_step'])}) | "
                f"{fmt(w['mean_abs'])} |")
    return lines + ["", "Values are mean ± sd over seeds, each seed read at its own T(n). gap = Real - Ideal. "
                    "Noise floor: the sd across seeds of each world at the same step (the mean T(n)); the larger "
                    "is shown first. Generalisation gap: Real test - Real train. Window: t in [n / batch, T(n)] "
                    "on the seed-averaged curves; the mean is the time average (trapezoid rule over steps).", ""]


def format_bootstrap_headline(headline: dict) -> str:
    """A few console lines: where the bootstrap report is and its headline figures."""
    w = headline["window"]
    sd = headline.get("gap_sd")
    out = [f"report: {headline['report']}",
           f"  {headline['seeds']} seed(s); " + _fit_sentence(headline),
           f"  test soft-error at T(n): Real {fmt(headline['real_test_soft_error'])}  Ideal "
           f"{fmt(headline['ideal_test_soft_error'])}  gap {fmt_gap(headline['gap'])}"
           + (f" ± {fmt(sd)}" if sd is not None and np.isfinite(sd) else "")
           + f"  noise floor {fmt(headline['noise_floor'])}  generalisation gap {fmt(headline['generalisation_gap'])}",
           f"  seed-averaged |gap| over t in [{fmt_int(w['start'])}, {fmt_int(w['end'])}]: max {fmt(w['max_abs'])}, "
           f"time-averaged {fmt(w['mean_abs'])}"]
    for name, e in headline["extra"].items():
        out.append(f"  {name} soft-error at T(n): Real {fmt(e['real'])}  Ideal {fmt(e['ideal'])}  "
                   f"gap {fmt_gap(e['gap'])}")
    out += textwrap.wrap(f"verdict ({headline['verdict_code']}): {headline['verdict']}", width=110,
                         initial_indent="  ", subsequent_indent="    ")
    return "\n".join(out)
