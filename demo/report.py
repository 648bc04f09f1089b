"""The demo's words: the report's generator section and the console summary (`python -m demo run`)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from demo.config import DemoConfig
from train import format_headline, seeds_needed, tost_power

REAL_TEST_NAME = "real-digits"  # the extra test set's name in the bootstrap report


def generator_markdown(cfg: DemoConfig, quality: dict, synthetic_dir: Path) -> str:
    """The report's generator section: what the synthetic digits are and how far from real ones."""
    lab, check, labels = quality["labeler_holdout"], quality["synthetic_vs_real"], quality["synthetic_labels"]
    hist = labels["train_histogram"]
    conf = labels["mean_confidence"]
    lines = [
        "## The generator: how close are the synthetic digits to real ones?",
        "",
        f"The pool (`{synthetic_dir}`: {cfg.train:,} train + {cfg.test:,} test digits) was sampled from the "
        f"demo's diffusion model (DPM-Solver++, {cfg.gen_steps} steps, seed {cfg.seed}) and labelled by the "
        "demo's labeler, both trained on the real train split of scikit-learn's digits (split seed "
        f"{cfg.split_seed}). The {lab['count']} real held-out digits were seen by neither model: they are "
        f"the `{REAL_TEST_NAME}` test set above. The Real and Ideal Worlds both live inside the synthetic "
        f"distribution; `{REAL_TEST_NAME}` shows how what they learn carries over to real digits.",
        "",
        "| check | result |",
        "|---|---|",
        f"| labeler accuracy on the real holdout (as the generator applies it) | {pct(lab['accuracy'])} "
        f"({lab['errors']} wrong of {lab['count']}; mean confidence {lab['mean_confidence']:.3f}) |",
        f"| labeler mean confidence on the synthetic digits | {'n/a' if conf is None else f'{conf:.3f}'} |",
        f"| synthetic digits with labeler top probability < 0.9 | {pct(labels.get('unsure_fraction'))} |",
        *_filter_rows(labels),
        f"| pool train digits per class (0-9) | {', '.join(f'{c:,}' for c in hist)} |",
        "",
        f"Synthetic vs real training data: {check['classifier']}, trained on n digits, tested on the "
        f"{check['test_set']}.",
        "",
        "| n | trained on synthetic | trained on real | synthetic - real |",
        "|---|---|---|---|",
    ]
    for row in check["rows"]:
        diff = 100 * (row["synthetic_to_real_accuracy"] - row["real_to_real_accuracy"])
        lines.append(
            f"| {row['n']:,} | {pct(row['synthetic_to_real_accuracy'])} | "
            f"{pct(row['real_to_real_accuracy'])} | {diff:+.1f} points |"
        )
    lines += ["", _quality_sentence(check), ""]
    return "\n".join(lines)


def _filter_rows(labels: dict) -> list[str]:
    if not labels.get("min_confidence"):
        return ["| label filter | none: every generated digit is in the pool |"]
    kept = ", ".join(f"{split} {100 * f:.1f}%" for split, f in labels["kept_fraction"].items())
    return [
        f"| label filter (demo/confident.py) | kept the digits with labeler top probability >= "
        f"{labels['min_confidence']}: {kept} |"
    ]


def miniature_markdown(cfg: DemoConfig) -> str:
    """The report's honest limits: what this miniature can and cannot show about the Deep Bootstrap."""
    filtered = (
        f"digits, only those the labeler gives a top probability of at least {cfg.min_confidence} (train "
        "and test alike)"
        if cfg.min_confidence
        else "digits, ambiguous ones included"
    )
    labels = (
        "The label filter changes the task: the worlds are compared on the digits the labeler finds "
        "unambiguous, not on all the generator makes."
        if cfg.min_confidence
        else "The labels are a labeler's, and some digits are ambiguous (the generator section gives how many "
        "get a top probability below 0.9): the soft-error gap then mixes calibration with memorised label "
        "noise, and the error and loss gaps above can differ from it in sign; --min-confidence keeps only "
        "the digits the labeler is sure of."
    )
    return "\n".join(
        [
            "## What this miniature can and cannot show",
            "",
            f"It runs the paper's experiment end to end at toy scale: a generator stands in for CIFAR-5m, the "
            f"Real World trains on n = {cfg.n:,} of its {filtered}, for {cfg.steps:,} steps (batch "
            f"{cfg.batch_size}, {cfg.steps * cfg.batch_size / cfg.n:.0f} epochs), the Ideal World on "
            f"{cfg.steps * cfg.batch_size:,} fresh ones (the ledger above shows none reused), {cfg.seeds} seeds of "
            f"each, and tests the paired gap against a margin declared in the demo's config before the run "
            f"({cfg.margin} of the generalisation gap's lower 95% bound).",
            "",
            "It can show: for this model, this n and this data, whether the two worlds' test soft-errors at T(n) "
            "differ, and whether they agree within that margin; that the samplers, the ledger, the shared "
            "initialisation, the per-example test outputs and the reports work on real outputs.",
            "",
            "It cannot show: the paper's claim at its scale (32x32 CIFAR-5m, ResNets and ViTs, 39,000 steps, n from "
            "5K to 50K) or for other n, architectures or learning rates: these are 8x8 digits that a width-16 CNN "
            "learns in a few epochs. Equivalence within the margin is not a gap of zero, and a verdict on the "
            "synthetic distribution says nothing about real digits beyond the real-digits rows. The per-seed "
            "numbers depend on the CPU (float differences grow through SGD), so another machine gives other "
            "numbers within these CIs, not the same digits. " + labels,
            "",
        ]
    )


def power_sentence(stats: dict) -> str:
    """The design's power: how likely these seeds were to resolve the question, from the measured sd."""
    gap, margin = stats.get("gap"), stats.get("margin")
    if not gap or not gap.get("sd") or margin is None or not math.isfinite(margin):
        return "No power can be stated: the paired gap or the margin is undefined (see Result)."
    k, sd = gap["k"], gap["sd"]
    at_zero, at_half = tost_power(sd, margin, k), tost_power(sd, margin, k, true_gap=margin / 2)
    return (
        f"Power: with the sd of the per-seed gaps measured here ({sd:.4f}; itself estimated from these {k} "
        f"seeds) and the margin ±{margin:.4f}, {k} seeds had a {_chance(at_zero)} chance to show equivalence "
        f"if the true gap were 0, and {_chance(at_half)} if it were half the margin (TOST power, "
        f"train/reporting/inference.py); {seeds_needed(sd, margin)} seeds give 80% at a true gap of 0."
    )


def _chance(p: float) -> str:
    return "> 99%" if p > 0.99 else "< 1%" if p < 0.01 else f"{p:.0%}"


def _quality_sentence(check: dict) -> str:
    if not check["rows"]:
        return f"No size fitted both pools (skipped: {check['skipped_sizes']}); the check did not run."
    row = check["rows"][-1]
    diff = 100 * (row["synthetic_to_real_accuracy"] - row["real_to_real_accuracy"])
    if abs(diff) < 0.05:
        compare = "as accurate on real digits as the same classifier trained on real ones"
    else:
        compare = (
            f"{abs(diff):.1f} points {'less' if diff < 0 else 'more'} accurate on real digits than the "
            "same classifier trained on real ones"
        )
    return (
        f"At n = {row['n']:,}, a classifier trained on synthetic digits is {compare}: that is the price "
        "of learning from this generator instead of from real digits."
    )


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def rows_text(check: dict) -> str:
    rows = check.get("rows") or []
    return (
        ", ".join(
            f"n={r['n']}: {pct(r['synthetic_to_real_accuracy'])} vs {pct(r['real_to_real_accuracy'])}" for r in rows
        )
        or "n/a"
    )


def format_summary(cfg: DemoConfig, result: dict) -> str:
    """The console summary: total and stage times, the report's headline, the generator's quality."""
    headline, quality = result["headline"], result["quality"]
    minutes, seconds = divmod(round(result["total_s"]), 60)
    lines = [
        "",
        f"demo finished in {minutes} min {seconds:02d} s; everything is in {cfg.out}/",
        "stages: "
        + " | ".join(f"{s['name'].split(' (')[0].split(':')[0]} {s['wall_s']:.1f} s" for s in result["stages"]),
        format_headline(headline),
        *textwrap.wrap(result["power"], width=110, initial_indent="  ", subsequent_indent="    "),
        f"generator: labeler accuracy on the real holdout {pct(quality['labeler_holdout']['accuracy'])}; "
        f"classifier trained on synthetic vs real digits (real holdout accuracy): "
        f"{rows_text(quality['synthetic_vs_real'])}",
    ]
    return "\n".join(lines)
