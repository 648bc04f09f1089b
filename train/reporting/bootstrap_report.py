"""The bootstrap report: Real World (n) vs Ideal World of one experiment folder, from saved metrics.

Writes `report.md`, `soft_error.png`, `gap.png` and `results.json` (every number in the report).
Markdown files in `DIR/sections/` (e.g. the demo's generator-quality figures) are appended to a
bootstrap report in name order, so they survive re-rendering.

A bootstrap report states T(n), both worlds' test soft-error/error/loss at T(n) and at the end, the
largest |Real - Ideal| for t <= T(n), the generalisation gap at T(n), the ledgers, and says in plain
words whether the gap is small. "Small" is our fixed, stated convention (SMALL_GAP), never tuned.
"""
from __future__ import annotations

from pathlib import Path

from shards.jsonio import write_text_atomic
from train.reporting.experiment_file import REPORT, read_experiment, write_results
from train.reporting.formatting import SMALL_GAP, at_label, fmt, fmt_gap, fmt_int, is_small, ledger_table, runs_table
from train.reporting.plots import EXTRA_COLORS, IDEAL_COLOR, MARKERS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.results import METRIC_NAMES, METRICS, RunRecord, align, compare_worlds, config_differences, \
    json_safe, load_run


def render_bootstrap(exp_dir: str | Path) -> dict:
    """Write report.md, soft_error.png, gap.png and results.json for a bootstrap experiment."""
    exp_dir = Path(exp_dir)
    spec = read_experiment(exp_dir)
    runs = spec.get("runs", {"real": "real", "ideal": "ideal"})
    real, ideal = load_run(exp_dir / runs["real"]), load_run(exp_dir / runs["ideal"])
    cmp = compare_worlds(real, ideal)
    figures = [world_figure(exp_dir / "soft_error.png", real, ideal, cmp),
               gap_figure(exp_dir / "gap.png", real, ideal, cmp)]
    config = spec.get("config") or real.config
    headline = bootstrap_headline(exp_dir, config, cmp)
    text = bootstrap_markdown(exp_dir, real, ideal, cmp, config, figures, headline)
    write_text_atomic(exp_dir / REPORT, text)
    write_results(exp_dir, {"headline": headline, "comparison": cmp})
    return json_safe(headline)


def world_figure(path: Path, real: RunRecord, ideal: RunRecord, cmp: dict) -> Path:
    """The paper's Fig. 1: test soft-error vs step for both worlds, train soft-error dashed."""
    lines = []
    for world, run, color in (("Real", real, REAL_COLOR), ("Ideal", ideal, IDEAL_COLOR)):
        lines.append(Line(*run.series("test/soft_error"), f"{world} test", color))
        lines.append(Line(*run.series("train/soft_error"), f"{world} train", color, "--"))
        for i, name in enumerate(cmp["sets"]):
            if name != "test":
                lines.append(Line(*run.series(f"{name}/soft_error"), f"{world} {name}", color, "-.",
                                  MARKERS[i % len(MARKERS)]))
    n = real.config.get("n")
    panel = Panel(tuple(lines), "soft-error", vline=cmp["fit_step"], vline_label=_fit_label(cmp),
                  title=f"Real World (n = {fmt_int(n)}) vs Ideal World")
    return save_panels(path, [panel])


def _fit_label(cmp: dict) -> str:
    return f"T(n) = {cmp['fit_step']:,}" if cmp["fit_step"] is not None else ""


def gap_figure(path: Path, real: RunRecord, ideal: RunRecord, cmp: dict) -> Path:
    """Real - Ideal vs step for soft-error, error and loss, on every test set, T(n) marked."""
    panels = []
    for metric in METRICS:
        lines = []
        for i, name in enumerate(cmp["sets"]):
            if metric not in cmp["sets"][name]:
                continue
            aligned = align(real, ideal, f"{name}/{metric}")
            color = "black" if name == "test" else EXTRA_COLORS[i % len(EXTRA_COLORS)]
            lines.append(Line(aligned.steps, aligned.gap, name, color))
        panels.append(Panel(tuple(lines), f"Real - Ideal test {METRIC_NAMES[metric]}",
                            vline=cmp["fit_step"], vline_label=_fit_label(cmp), zero_line=True,
                            title=f"bootstrap gap: {METRIC_NAMES[metric]}"))
    return save_panels(path, panels)


def bootstrap_headline(exp_dir: Path, config: dict, cmp: dict) -> dict:
    """The figures a console summary shows (see format_headline)."""
    soft = cmp["sets"]["test"]["soft_error"]
    gen_gap = cmp["generalisation"]["soft_error"]["real_gap"]
    return {
        "kind": "bootstrap",
        "dir": str(exp_dir),
        "report": str(exp_dir / REPORT),
        "n": config.get("n"),
        "model": config.get("model"),
        "steps": config.get("steps"),
        "fit_step": cmp["fit_step"],
        "fit_threshold": cmp["fit_threshold"],
        "ref_step": cmp["ref_step"],
        "real_test_soft_error": soft["real_at_fit"],
        "ideal_test_soft_error": soft["ideal_at_fit"],
        "gap": soft["gap_at_fit"],
        "max_abs_gap": soft["max_abs_gap"],
        "max_gap_step": soft["max_gap_step"],
        "generalisation_gap": gen_gap,
        "small_gap": SMALL_GAP,
        "gap_is_small": is_small(soft["max_abs_gap"]),
        "extra": {name: {"real": m["soft_error"]["real_at_fit"], "ideal": m["soft_error"]["ideal_at_fit"],
                         "gap": m["soft_error"]["gap_at_fit"]}
                  for name, m in cmp["sets"].items() if name != "test" and "soft_error" in m},
        "verdict": bootstrap_verdict(cmp),
    }


def bootstrap_verdict(cmp: dict) -> str:
    """One plain paragraph: T(n), the gap at T(n), the largest gap, and small or not."""
    soft = cmp["sets"]["test"]["soft_error"]
    fit, thr = cmp["fit_step"], cmp["fit_threshold"]
    if fit is None:
        first = (f"The Real World never reached train error <= {thr:.0%}, so T(n) is undefined: figures "
                 f"'at T(n)' are at the last common step, {cmp['ref_step']:,}, and the largest gap is "
                 "over all evaluated steps.")
        window = "over all evaluated steps"
    else:
        first = f"T(n) = {fit:,}: the first evaluated step with Real train error <= {thr:.0%}."
        window = "for t <= T(n)"
    small = is_small(soft["max_abs_gap"])
    gen = cmp["generalisation"]["soft_error"]["real_gap"]
    return " ".join([
        first,
        f"Test soft-error at {at_label(cmp)}: Real {fmt(soft['real_at_fit'])}, Ideal "
        f"{fmt(soft['ideal_at_fit'])}, gap {fmt_gap(soft['gap_at_fit'])}.",
        f"The bootstrap gap is {'small' if small else 'not small'}: |Real - Ideal| test soft-error is at "
        f"most {fmt(soft['max_abs_gap'])} {window} (at step {fmt_int(soft['max_gap_step'])}), "
        f"{'within' if small else 'above'} the {SMALL_GAP} we call small.",
        f"For scale, the Real World's generalisation gap (test - train soft-error) at {at_label(cmp)} "
        f"is {fmt(gen)}.",
    ])


def bootstrap_markdown(exp_dir, real, ideal, cmp, config, figures, headline) -> str:
    lines = [f"# Deep Bootstrap: Real World (n = {fmt_int(config.get('n'))}) vs Ideal World", ""]
    lines += [_settings_line(config), "", "## Result", "", headline["verdict"], ""]
    lines += _notes(real, ideal, cmp)
    lines += ["## Figures", ""]
    lines += [f"![{fig.stem}]({fig.relative_to(exp_dir).as_posix()})" for fig in figures] + [""]
    lines += ["`soft_error.png`: test soft-error of both worlds (solid), train soft-error (dashed), extra "
              "test sets (dash-dot), T(n) dotted. `gap.png`: Real - Ideal on each test set, for "
              "soft-error, error and loss.", ""]
    lines += comparison_table(cmp) + generalisation_table(cmp)
    lines += ledger_table([("Real", real), ("Ideal", ideal)]) + runs_table(exp_dir, [("Real", real), ("Ideal", ideal)])
    for section in sorted((exp_dir / "sections").glob("*.md")):
        lines += [section.read_text().rstrip(), ""]
    return "\n".join(lines)


def _settings_line(config: dict) -> str:
    return (f"Data `{config.get('data')}`, model `{config.get('model')}`, {fmt_int(config.get('steps'))} "
            f"SGD steps at batch {fmt_int(config.get('batch_size'))}, seed {config.get('seed')}. Both "
            "worlds share one config (same model and init, optimiser, schedule, batch, augmentation, "
            "evaluation steps); only the sampler differs.")


def _notes(real: RunRecord, ideal: RunRecord, cmp: dict) -> list[str]:
    notes = []
    for world, run in (("Real", real), ("Ideal", ideal)):
        if not run.finished:
            notes.append(f"The {world} run has not finished (last evaluated step "
                         f"{run.last_step():,}); re-run the same command to complete it.")
    diffs = config_differences(real, ideal)
    if diffs:
        shown = ", ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in ((k, *v) for k, v in diffs.items()))
        notes.append(f"Warning: the two runs' configs differ beyond mode and folder ({shown}).")
    if cmp["interpolated"]:
        notes.append("The worlds were evaluated at different steps: Ideal values are linearly "
                     "interpolated onto the Real steps.")
    ledger = (ideal.summary or {}).get("ledger") or {}
    if ledger and not ledger.get("no_reuse", True):
        notes.append(f"The Ideal run reused samples ({ledger.get('passes')} passes over the pool), "
                     "so it is not a pure Ideal World.")
    return ([f"- {note}" for note in notes] + [""]) if notes else []


def comparison_table(cmp: dict) -> list[str]:
    at = at_label(cmp)
    window = "t ≤ T(n)" if cmp["fit_step"] is not None else "all t"
    lines = ["## Real vs Ideal on each test set", "",
             f"| test set | metric | Real at {at} | Ideal at {at} | gap at {at} | max \\|gap\\|, {window} "
             "(step) | Real at end | Ideal at end | gap at end |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, metrics in cmp["sets"].items():
        for metric, e in metrics.items():
            lines.append(
                f"| {name} | {METRIC_NAMES[metric]} | {fmt(e['real_at_fit'])} | {fmt(e['ideal_at_fit'])} | "
                f"{fmt_gap(e['gap_at_fit'])} | {fmt(e['max_abs_gap'])} ({fmt_int(e['max_gap_step'])}) | "
                f"{fmt(e['real_end'])} | {fmt(e['ideal_end'])} | {fmt_gap(e['gap_end'])} |")
    return lines + ["", "gap = Real - Ideal; 'end' is each run's last evaluated step.", ""]


def generalisation_table(cmp: dict) -> list[str]:
    at = at_label(cmp)
    lines = [f"## Train vs test at {at}", "",
             "| metric | Real train | Real test | Real test - train | Ideal train | Ideal test |",
             "|---|---|---|---|---|---|"]
    for metric, g in cmp["generalisation"].items():
        lines.append(f"| {METRIC_NAMES[metric]} | {fmt(g['real_train'])} | {fmt(g['real_test'])} | "
                     f"{fmt_gap(g['real_gap'])} | {fmt(g['ideal_train'])} | {fmt(g['ideal_test'])} |")
    return lines + [""]


def format_bootstrap_headline(headline: dict) -> str:
    """A few console lines: where the bootstrap report is and its headline figures."""
    fit = headline["fit_step"]
    at = "T(n)" if fit is not None else f"step {headline['ref_step']:,}"
    out = [f"report: {headline['report']}",
           f"  T(n) = {fmt_int(fit)}" + ("" if fit is not None else " (Real never reached train error "
                                           f"<= {headline['fit_threshold']:.0%})"),
           f"  test soft-error at {at}: Real {fmt(headline['real_test_soft_error'])}  Ideal "
           f"{fmt(headline['ideal_test_soft_error'])}  gap {fmt_gap(headline['gap'])}",
           f"  max |gap| up to {at}: {fmt(headline['max_abs_gap'])} (step {fmt_int(headline['max_gap_step'])}); "
           f"generalisation gap: {fmt(headline['generalisation_gap'])}"]
    for name, e in headline["extra"].items():
        out.append(f"  {name} soft-error at {at}: Real {fmt(e['real'])}  Ideal {fmt(e['ideal'])}  "
                   f"gap {fmt_gap(e['gap'])}")
    out.append(f"  bootstrap gap {'small' if headline['gap_is_small'] else 'NOT small'} "
               f"(|gap| <= {headline['small_gap']} is small)")
    return "\n".join(out)
