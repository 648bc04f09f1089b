"""What bootstrap and sweep experiments share: the experiment.json claim, preflight checks, folder names.

An experiment folder holds `experiment.json` (its kind, shared config and runs) beside its run folders;
`train.reporting.render` reads it back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from shards import ShardsError, load_manifest
from shards.jsonio import write_json_atomic
from train.core.config import RunConfig, validate
from train.core.samplers import check_pool
from train.errors import TrainError
from train.reporting.experiment_file import EXPERIMENT, read_experiment
from train.run import runfolder


def is_main_process() -> bool:
    """Under torchrun every rank trains, but only rank 0 writes experiment files and reports."""
    return os.environ.get("RANK", "0") == "0"


def preflight(cfgs: list[RunConfig]) -> None:
    """Validate every run and check pool sizes before any training, so no run dies hours in."""
    for cfg in cfgs:
        validate(cfg)
    pools = {}
    for cfg in cfgs:
        if cfg.data not in pools:
            try:
                manifest = load_manifest(cfg.data)
            except ShardsError as exc:
                raise TrainError(f"--data {cfg.data}: {exc}") from exc
            if cfg.train_split not in manifest.splits:
                raise TrainError(
                    f"--data {cfg.data}: no {cfg.train_split!r} split; it has {', '.join(manifest.splits)}"
                )
            pools[cfg.data] = manifest.splits[cfg.train_split].count
        pool = pools[cfg.data]
        if cfg.mode == "real" and cfg.n > pool:
            raise TrainError(
                f"--n={cfg.n:,}: larger than the train pool of {pool:,} samples in {cfg.data}; choose n <= {pool:,}"
            )
        check_pool(cfg.mode, cfg.steps, cfg.batch_size, pool, cfg.allow_reuse)


# What a caller may put into a new experiment folder before claiming it (the report's extra sections).
BEFORE_CLAIM = {"sections"}


def _only_runs_of_ours(path: Path) -> bool:
    """A folder holding nothing but run folders this toolkit made (their marker), at any depth."""
    if not path.is_dir():
        return False
    return (path / runfolder.MARKER).is_file() or all(_only_runs_of_ours(child) for child in path.iterdir())


def claim_experiment(exp_dir: Path, spec: dict, overwrite: bool, same) -> None:
    """Write experiment.json, refusing a folder that holds another experiment unless overwrite, and a
    folder of other files (no experiment.json: not ours) unless overwrite, which then deletes none of them."""
    path = exp_dir / EXPERIMENT
    if exp_dir.exists() and not exp_dir.is_dir():
        raise TrainError(f"--out={exp_dir}: exists and is not a folder; choose another --out")
    if exp_dir.is_dir() and not path.is_file() and not overwrite:
        found = sorted(p.name for p in exp_dir.iterdir() if p.name not in BEFORE_CLAIM and not _only_runs_of_ours(p))
        if found:
            raise TrainError(
                f"--out={exp_dir}: not empty and not an experiment folder of this toolkit (found "
                f"{', '.join(found[:5])}{', ...' if len(found) > 5 else ''}; no {EXPERIMENT}); "
                "choose an empty or new --out, or pass --overwrite to write the experiment there "
                "(none of those files is deleted)"
            )
    if path.is_file() and not overwrite:
        old = read_experiment(exp_dir)
        if old.get("kind") != spec["kind"] or not same(old):
            raise TrainError(
                f"{exp_dir}: holds another {old.get('kind')} experiment (different settings); "
                "choose another --out or pass --overwrite"
            )
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, spec)  # a killed command never leaves half a description


def folder_name(model: str) -> str:
    """`timm:vit_tiny_patch16_224` -> `timm-vit_tiny_patch16_224`: safe in paths on every OS."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model)
