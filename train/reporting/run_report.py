"""The report of a single run folder: soft-error curves, T(n), metrics at T(n) and at the end, the ledger.

Writes `report.md` and `soft_error.png` into the run folder, from its saved metrics alone.
"""

from __future__ import annotations

import math
from pathlib import Path

from shards.jsonio import write_text_atomic
from train.reporting.experiment_file import REPORT
from train.reporting.formatting import fmt_int, fmt_se, ledger_table, runs_table, sampling_se
from train.reporting.plots import EXTRA_COLORS, REAL_COLOR, Line, Panel, save_panels
from train.reporting.results import METRIC_NAMES, METRICS, RunRecord, json_safe, load_run, value_at


def render_run(run_dir: str | Path) -> dict:
    """A single run: soft-error curves, T(n), metrics at T(n) and at the end, the ledger."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    fit = run.fit_step()
    ref = fit if fit is not None else run.last_step()
    figure = run_figure(run_dir / "soft_error.png", run, fit)
    values = {}
    for name in ["train"] + run.eval_sets():
        for metric in METRICS:
            steps, series = run.series(f"{name}/{metric}")
            if len(steps):
                values[f"{name}/{metric}"] = {"at_fit": value_at(steps, series, ref), "end": float(series[-1])}
    write_text_atomic(run_dir / REPORT, run_markdown(run, fit, ref, values, figure))
    mode = run.config.get("mode")
    return json_safe(
        {
            "kind": "run",
            "dir": str(run_dir),
            "report": str(run_dir / REPORT),
            "mode": mode,
            "n": run.config.get("n"),
            "fit_step": fit,
            "ref_step": ref,
            "metrics": values,
        }
    )


def run_figure(path: Path, run: RunRecord, fit: int | None) -> Path:
    lines = [
        Line(*run.series("test/soft_error"), "test", REAL_COLOR),
        Line(*run.series("train/soft_error"), "train", REAL_COLOR, "--"),
    ]
    for i, name in enumerate(run.eval_sets()[1:]):
        lines.append(Line(*run.series(f"{name}/soft_error"), name, EXTRA_COLORS[i % len(EXTRA_COLORS)], "-."))
    title = f"{run.config.get('mode', '?')} world, n = {fmt_int(run.config.get('n'))}, model {run.config.get('model')}"
    return save_panels(
        path,
        [
            Panel(
                tuple(lines), "soft-error", vline=fit, vline_label="" if fit is None else f"T(n) = {fit:,}", title=title
            )
        ],
    )


def run_markdown(run: RunRecord, fit: int | None, ref: int, values: dict, figure: Path) -> str:
    mode = run.config.get("mode", "?")
    if fit is not None:
        fit_text = f"T(n) = {fit:,} (first evaluated step with train error <= {run.fit_threshold:.0%})."
        at = "T(n)"
    else:
        fit_text = f"The run never reached train error <= {run.fit_threshold:.0%}: T(n) is undefined."
        at = f"step {ref:,} (no T(n))"
    table = [f"| set | metric | at {at} | at end | sampling SE |", "|---|---|---|---|---|"]
    for key, v in values.items():
        name, metric = key.rsplit("/", 1)
        se = sampling_se(v["end"], run.rows[-1].get(f"{name}/count")) if metric != "loss" else math.nan
        shown = "n/a" if not math.isfinite(se) else f"{se:.4f}"
        table.append(
            f"| {name} | {METRIC_NAMES[metric]} | {fmt_se(v['at_fit'], se)} | {fmt_se(v['end'], se)} | {shown} |"
        )
    table += [
        "",
        "Rates are rounded to what their sampling SE over the evaluated examples supports: "
        "sqrt(p (1 - p) / N), exact for the error, an upper bound for the soft-error; n/a for the loss "
        "and for runs that did not log N.",
    ]
    c = run.config
    lines = [
        f"# Run: {mode} world, n = {fmt_int(c.get('n'))}",
        "",
        f"Data `{c.get('data')}`, model `{c.get('model')}`, {fmt_int(c.get('steps'))} SGD steps at "
        f"batch {fmt_int(c.get('batch_size'))}, seed {c.get('seed')}.",
        "",
        fit_text,
        "",
        f"![soft-error]({figure.name})",
        "",
        *table,
        "",
    ]
    lines += ledger_table([(mode, run)]) + runs_table(run.run_dir.parent, [(mode, run)])
    return "\n".join(lines)


def format_run_headline(headline: dict) -> str:
    return f"report: {headline['report']}\n  T(n) = {fmt_int(headline['fit_step'])}"
