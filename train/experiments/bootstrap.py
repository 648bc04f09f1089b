"""The bootstrap experiment: Real World (n) vs Ideal World made from one shared config, then a report.

    python -m train bootstrap --data DATASET --n 50000 --preset paper-cifar5m --out out/runs/boot

From Python: `bootstrap(cfg)` returns the report's headline figures (`train.reporting.render.format_headline`
prints them).

Folder layout (`<exp>` = cfg.out_dir):
    <exp>/experiment.json     kind "bootstrap", the shared config, the two run folders
    <exp>/real/  <exp>/ideal/ run folders (config.json, metrics.jsonl, summary.json, checkpoints)
    <exp>/report.md, soft_error.png, gap.png, results.json

The two worlds differ only in `mode`, `out_dir` and `n` (dataclasses.replace on one config), so model
and init seed, optimiser, schedule, batch, augmentation, precision and evaluation steps are identical by
construction. Re-running resumes: a finished run returns its summary, a killed one continues from its
checkpoint.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from train.core.config import RunConfig, config_hash
from train.experiments.common import claim_experiment, is_main_process, preflight
from train.reporting.bootstrap_report import render_bootstrap
from train.run.loop import run_training
from train.run.packed import plan_packs, run_packed

log = logging.getLogger(__name__)


def world_configs(cfg: RunConfig, exp_dir: Path) -> tuple[RunConfig, RunConfig]:
    """The Real and the Ideal run of one comparison: the same config, two samplers, two folders."""
    real = dataclasses.replace(cfg, mode="real", out_dir=str(exp_dir / "real"))
    ideal = dataclasses.replace(cfg, mode="ideal", n=None, out_dir=str(exp_dir / "ideal"))
    return real, ideal


def bootstrap(cfg: RunConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
              pack: int | None = None) -> dict:
    """Run Real (n) and Ideal with identical settings into cfg.out_dir, then write the report.

    `pack`: 2 trains both worlds as one packed model (`train.run.packed`), 1 one after the other,
    None the device's default.
    """
    exp_dir = Path(cfg.out_dir)
    real, ideal = world_configs(cfg, exp_dir)
    preflight([real, ideal])
    spec = {"kind": "bootstrap", "config": dataclasses.replace(cfg, mode="real").to_dict(),
            "config_hash": config_hash(real), "runs": {"real": "real", "ideal": "ideal"}}
    if is_main_process():
        claim_experiment(exp_dir, spec, overwrite, same=lambda old: old.get("config_hash") == spec["config_hash"])
    if len(plan_packs([real, ideal], pack)) == 1:
        log.info("Real and Ideal World packed -> %s, %s", real.out_dir, ideal.out_dir)
        run_packed([real, ideal], resume=resume, overwrite=overwrite, progress=progress)
    else:
        for label, run_cfg in (("Real", real), ("Ideal", ideal)):
            log.info("%s World -> %s", label, run_cfg.out_dir)
            run_training(run_cfg, resume=resume, overwrite=overwrite, progress=progress)
    return render_bootstrap(exp_dir) if is_main_process() else {}
