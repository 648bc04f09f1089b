"""The bootstrap experiment: Real World (n) vs Ideal World made from one shared config, then a report.

    python -m train bootstrap --data DATASET --n 50000 --preset paper-cifar5m --seeds 3 --out out/runs/boot

From Python: `bootstrap(cfg, seeds=3)` returns the report's headline figures (`train.reporting.render.format_headline`
prints them).

Folder layout (`<exp>` = cfg.out_dir):
    <exp>/experiment.json     kind "bootstrap", the shared config, the run folders of each seed
    <exp>/real/  <exp>/ideal/ one seed: the run folders (config.json, metrics.jsonl, summary.json, ...)
    <exp>/seed<S>/real/  <exp>/seed<S>/ideal/   with --seeds K > 1: seeds --seed .. --seed+K-1
    <exp>/report.md, soft_error.png, gap.png, results.json

The two worlds of a seed differ only in `mode`, `out_dir` and `n` (dataclasses.replace on one config), so
model and init seed, optimiser, schedule, batch, augmentation, precision and evaluation steps are identical by
construction. Re-running resumes: a finished run returns its summary, a killed one continues from its
checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from train.core.config import RunConfig, config_hash
from train.errors import TrainError
from train.experiments.common import claim_experiment, is_main_process, preflight
from train.reporting.bootstrap_report import render_bootstrap, seed_entries
from train.reporting.margin import DEFAULT_MARGIN, Margin
from train.run.loop import run_training
from train.run.packed import plan_packs, run_packed

log = logging.getLogger(__name__)


def world_configs(cfg: RunConfig, exp_dir: Path) -> tuple[RunConfig, RunConfig]:
    """The Real and the Ideal run of one comparison: the same config, two samplers, two folders."""
    real = dataclasses.replace(cfg, mode="real", out_dir=str(exp_dir / "real"))
    ideal = dataclasses.replace(cfg, mode="ideal", n=None, out_dir=str(exp_dir / "ideal"))
    return real, ideal


def seed_folders(cfg: RunConfig, seeds: int) -> list[tuple[int, str]]:
    """(seed, folder relative to the experiment) per seed: `.` for one seed (real/, ideal/), else seed<S>."""
    if seeds == 1:
        return [(cfg.seed, ".")]
    return [(cfg.seed + i, f"seed{cfg.seed + i}") for i in range(seeds)]


def plan_bootstrap(cfg: RunConfig, seeds: int = 1, margin: Margin | None = None) -> tuple[dict, list[RunConfig]]:
    """experiment.json's content and the runs of K seeds, each seed's Real run before its Ideal run.

    `margin`: the equivalence margin declared before the run (default DEFAULT_MARGIN), saved with it.
    """
    if seeds < 1:
        raise TrainError(f"--seeds={seeds}: must be >= 1")
    exp_dir = Path(cfg.out_dir)
    entries: list[dict] = []
    runs: list[RunConfig] = []
    for seed, folder in seed_folders(cfg, seeds):
        runs += world_configs(dataclasses.replace(cfg, seed=seed), exp_dir / folder)
        prefix = "" if folder == "." else f"{folder}/"
        entries.append({"seed": seed, "real": f"{prefix}real", "ideal": f"{prefix}ideal"})
    spec = {
        "kind": "bootstrap",
        "config": dataclasses.replace(cfg, mode="real").to_dict(),
        "config_hash": config_hash(runs[0]),
        "seeds": seeds,
        "runs": entries,
        "margin": (margin or Margin.parse(DEFAULT_MARGIN)).to_dict(),
    }
    return spec, runs


def bootstrap(
    cfg: RunConfig,
    seeds: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    pack: int | None = None,
    margin: Margin | None = None,
) -> dict:
    """Run Real (n) and Ideal with identical settings for each seed into cfg.out_dir, then the report.

    `margin`: the equivalence margin the verdict tests against, declared now (default DEFAULT_MARGIN); an
    experiment folder declared with another margin is refused unless overwrite.

    `pack`: up to `pack` of the 2 x seeds runs trained as one packed model (`train.run.packed`); 1 one
    after the other; None the device's default.
    """
    exp_dir = Path(cfg.out_dir)
    spec, runs = plan_bootstrap(cfg, seeds, margin)
    preflight(runs)
    if is_main_process():
        # seed_entries reads the one-seed layout of older experiment.json files too
        claim_experiment(
            exp_dir,
            spec,
            overwrite,
            same=lambda old: (
                (old.get("config_hash"), seed_entries(old), Margin.from_dict(old.get("margin")).to_dict())
                == (spec["config_hash"], spec["runs"], spec["margin"])
            ),
        )
    for group in plan_packs(runs, pack):
        if len(group) > 1:
            log.info("%d runs packed as one model: %s", len(group), ", ".join(r.out_dir for r in group))
            run_packed(group, resume=resume, overwrite=overwrite, progress=progress)
            continue
        run_cfg = group[0]
        log.info("%s World, seed %d -> %s", run_cfg.mode.title(), run_cfg.seed, run_cfg.out_dir)
        run_training(run_cfg, resume=resume, overwrite=overwrite, progress=progress)
    return render_bootstrap(exp_dir) if is_main_process() else {}
