"""The demo's words: the report's generator section and the console summary (`python -m demo run`)."""
from __future__ import annotations

from pathlib import Path

from demo.config import DemoConfig
from train.reporting.formatting import fmt
from train.reporting.render import format_headline

REAL_TEST_NAME = "real-digits"  # the extra test set's name in the bootstrap report


def generator_markdown(cfg: DemoConfig, quality: dict, synthetic_dir: Path) -> str:
    """The report's generator section: what the synthetic digits are and how far from real ones."""
    lab, check, labels = quality["labeler_holdout"], quality["synthetic_vs_real"], quality["synthetic_labels"]
    hist = labels["train_histogram"]
    conf = labels["mean_confidence"]
    lines = [
        "## The generator: how close are the synthetic digits to real ones?", "",
        f"The pool (`{synthetic_dir}`: {cfg.train:,} train + {cfg.test:,} test digits) was sampled from the "
        f"demo's diffusion model (DPM-Solver++, {cfg.gen_steps} steps, seed {cfg.seed}) and labelled by the "
        "demo's labeler, both trained on the real train split of scikit-learn's digits (split seed "
        f"{cfg.split_seed}). The {lab['count']} real held-out digits were seen by neither model: they are "
        f"the `{REAL_TEST_NAME}` test set above. The Real and Ideal Worlds both live inside the synthetic "
        f"distribution; `{REAL_TEST_NAME}` shows how what they learn carries over to real digits.", "",
        "| check | result |", "|---|---|",
        f"| labeler accuracy on the real holdout (as the generator applies it) | {pct(lab['accuracy'])} "
        f"({lab['errors']} wrong of {lab['count']}; mean confidence {lab['mean_confidence']:.3f}) |",
        f"| labeler mean confidence on the synthetic digits | {'n/a' if conf is None else f'{conf:.3f}'} |",
        f"| synthetic train digits per class (0-9) | {', '.join(f'{c:,}' for c in hist)} |", "",
        f"Synthetic vs real training data: {check['classifier']}, trained on n digits, tested on the "
        f"{check['test_set']}.", "",
        "| n | trained on synthetic | trained on real | synthetic - real |", "|---|---|---|---|",
    ]
    for row in check["rows"]:
        diff = 100 * (row["synthetic_to_real_accuracy"] - row["real_to_real_accuracy"])
        lines.append(f"| {row['n']:,} | {pct(row['synthetic_to_real_accuracy'])} | "
                     f"{pct(row['real_to_real_accuracy'])} | {diff:+.1f} points |")
    lines += ["", _quality_sentence(check), ""]
    return "\n".join(lines)


def miniature_markdown(cfg: DemoConfig) -> str:
    """The report's honest limits: what this miniature can and cannot show about the Deep Bootstrap."""
    return "\n".join([
        "## What this miniature can and cannot show", "",
        f"It runs the paper's experiment end to end at toy scale: a generator stands in for CIFAR-5m, the "
        f"Real World trains on n = {cfg.n:,} of its digits for {cfg.steps:,} steps (batch {cfg.batch_size}, "
        f"{cfg.steps * cfg.batch_size / cfg.n:.0f} epochs), the Ideal World on {cfg.steps * cfg.batch_size:,} "
        f"fresh ones (the ledger above shows none reused), {cfg.seeds} seeds of each.", "",
        "It can show: whether, for this model and data, the two worlds' test soft-errors at T(n) differ by "
        "more than seed-to-seed noise, and how that gap compares with the Real World's generalisation gap; "
        "that the samplers, the ledger, the shared initialisation and the reports work on real outputs.", "",
        "It cannot show: the paper's claim at its scale (32x32 CIFAR-5m, ResNets and ViTs, 39,000 steps, "
        "n from 5K to 50K). These are 8x8 digits that a width-16 CNN learns in a few epochs, one n, one "
        "architecture, one learning rate. The noise floor is an sd from "
        f"{cfg.seeds} seeds, itself uncertain by about ±{100 / (2 * (cfg.seeds - 1)) ** 0.5:.0f}%"
        " (the relative sd of a sample sd); a gap 'within noise' means not resolved by this many seeds, not "
        "zero. The window figures (largest and mean |gap| over [n / batch, T(n)]) have no noise floor of "
        "their own: early on the curves fall fast and the seeds spread more than at T(n). "
        "The synthetic digits are a generator's approximation of real digits (see the generator "
        "section), so agreement inside that distribution says nothing about the real holdout's columns "
        "beyond what they show.", "",
    ]) if cfg.seeds > 1 else "\n".join([
        "## What this miniature can and cannot show", "",
        "With one seed it shows the machinery only: no statement about the gap is possible (see Result).", ""])


def _quality_sentence(check: dict) -> str:
    if not check["rows"]:
        return f"No size fitted both pools (skipped: {check['skipped_sizes']}); the check did not run."
    row = check["rows"][-1]
    diff = 100 * (row["synthetic_to_real_accuracy"] - row["real_to_real_accuracy"])
    if abs(diff) < 0.05:
        compare = "as accurate on real digits as the same classifier trained on real ones"
    else:
        compare = (f"{abs(diff):.1f} points {'less' if diff < 0 else 'more'} accurate on real digits than the "
                   "same classifier trained on real ones")
    return (f"At n = {row['n']:,}, a classifier trained on synthetic digits is {compare}: that is the price "
            "of learning from this generator instead of from real digits.")


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def rows_text(check: dict) -> str:
    rows = check.get("rows") or []
    return ", ".join(f"n={r['n']}: {pct(r['synthetic_to_real_accuracy'])} vs {pct(r['real_to_real_accuracy'])}"
                     for r in rows) or "n/a"


def format_summary(cfg: DemoConfig, result: dict) -> str:
    """The console summary: total and stage times, the report's headline, the generator's quality."""
    headline, quality = result["headline"], result["quality"]
    minutes, seconds = divmod(round(result["total_s"]), 60)
    at = "T(n)" if headline.get("fit_step") is not None else f"step {headline.get('ref_step'):,.0f}"
    real_err = headline["real_digits_error"]
    lines = [
        "", f"demo finished in {minutes} min {seconds:02d} s; everything is in {cfg.out}/",
        "stages: " + " | ".join(f"{s['name'].split(' (')[0].split(':')[0]} {s['wall_s']:.1f} s"
                                for s in result["stages"]),
        format_headline(headline),
        f"  {REAL_TEST_NAME} test error at {at}: Real {fmt(real_err['real'])}  Ideal {fmt(real_err['ideal'])}",
        f"generator: labeler accuracy on the real holdout {pct(quality['labeler_holdout']['accuracy'])}; "
        f"classifier trained on synthetic vs real digits (real holdout accuracy): "
        f"{rows_text(quality['synthetic_vs_real'])}",
    ]
    return "\n".join(lines)
