"""The sweep: the grid n x models x lrs x seeds of Real vs Ideal comparisons, then the sweep report.

    python -m train sweep --data DATASET --n 5000,10000 --model mcnn,preact-resnet18 --lr 0.1,0.05 \
        --seeds 3 --preset paper-cifar5m --out out/runs/sweep [--ray]

From Python: `sweep(cfg, ns=..., models=..., seeds=..., lrs=...)` returns the report's headline figures.

Folder layout (`<exp>` = cfg.out_dir; <cell> = <model>-lr<lr>-s<seed>):
    <exp>/experiment.json          kind "sweep", base config, models, ns, lrs, seeds, every run
    <exp>/runs/<cell>/ideal/       one Ideal run per (model, lr, seed): the Ideal World has no n
    <exp>/runs/<cell>/real-n<N>/   one Real run per (model, lr, n, seed)
    <exp>/report.md, scatter.png, learning_curve.png, results.json

Every run is `dataclasses.replace` on one base config, so the worlds differ only in mode, n and folder.
Re-running resumes: finished runs are skipped and killed ones continue from their checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from tqdm.auto import tqdm

from shards.runtime import start_ray
from train.core.config import RunConfig, identity_dict
from train.errors import TrainError
from train.experiments.common import claim_experiment, folder_name, is_main_process, preflight
from train.reporting.experiment_file import REPORT, read_experiment
from train.reporting.margin import DEFAULT_MARGIN, Margin
from train.reporting.sweep_report import render_sweep
from train.run import runfolder
from train.run.loop import run_training
from train.run.packed import plan_packs, run_packed

log = logging.getLogger(__name__)

# Fields a sweep varies or a world sets: the rest of the config must match a sweep already on disk.
_GRID_FIELDS = ("mode", "n", "model", "seed", "lr", "out_dir")


def plan_sweep(
    base: RunConfig, ns: list[int], models: list[str], seeds: list[int], lrs: list[float] | None = None
) -> tuple[list[dict], list[RunConfig]]:
    """The grid's entries (for experiment.json) and its unique runs, Ideal runs first per (model, lr, seed)."""
    exp_dir = Path(base.out_dir)
    ns, models, seeds = sorted(set(ns)), list(dict.fromkeys(models)), sorted(set(seeds))
    lrs = sorted(set(lrs or [base.lr]), reverse=True)
    entries, runs = [], []
    for model in models:
        for lr in lrs:
            for seed in seeds:
                cell = f"runs/{folder_name(model)}-lr{lr:g}-s{seed}"
                runs.append(
                    dataclasses.replace(
                        base, mode="ideal", n=None, model=model, seed=seed, lr=lr, out_dir=str(exp_dir / cell / "ideal")
                    )
                )
                for n in ns:
                    runs.append(
                        dataclasses.replace(
                            base,
                            mode="real",
                            n=n,
                            model=model,
                            seed=seed,
                            lr=lr,
                            out_dir=str(exp_dir / cell / f"real-n{n}"),
                        )
                    )
                    entries.append(
                        {
                            "model": model,
                            "lr": lr,
                            "n": n,
                            "seed": seed,
                            "real": f"{cell}/real-n{n}",
                            "ideal": f"{cell}/ideal",
                        }
                    )
    return entries, runs


def shared_settings(cfg: RunConfig) -> dict:
    """What every run of a sweep shares: the run-defining config without the fields the grid varies."""
    return {k: v for k, v in identity_dict(cfg).items() if k not in _GRID_FIELDS}


def sweep(
    base: RunConfig,
    ns: list[int],
    models: list[str],
    seeds: list[int],
    lrs: list[float] | None = None,
    use_ray: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    pack: int | None = None,
    margin: Margin | None = None,
) -> dict:
    """Run (or finish) the grid n x models x lrs x seeds into base.out_dir, then write the sweep report.

    `margin`: the equivalence margin of every cell's verdict, declared now (default DEFAULT_MARGIN).

    `pack`: runs trained together as one packed model (`train.run.packed`); 1 = one by one; None = the
    device's default.

    A run that fails with a user error (or any error on Ray) does not stop the others: the report is
    written from the finished runs and then a TrainError lists the failures.
    """
    if not ns or not models or not seeds:
        raise TrainError("a sweep needs at least one n, one model and one seed")
    exp_dir = Path(base.out_dir)
    entries, runs = plan_sweep(base, ns, models, seeds, lrs)
    preflight(runs)
    if is_main_process():
        spec = _merge_sweep_spec(exp_dir, base, entries, overwrite)
        spec["margin"] = (margin or Margin.parse(DEFAULT_MARGIN)).to_dict()
        claim_experiment(
            exp_dir,
            spec,
            overwrite,
            same=lambda old: (
                (old.get("shared"), Margin.from_dict(old.get("margin")).to_dict()) == (spec["shared"], spec["margin"])
            ),
        )
    failures = run_many(runs, use_ray=use_ray, overwrite=overwrite, progress=progress, pack=pack)
    if not is_main_process():
        return {}
    headline = render_sweep(exp_dir)
    if failures:
        listed = "; ".join(f"{path}: {error}" for path, error in failures)
        raise TrainError(
            f"{len(failures)} of {len(runs)} sweep runs failed ({listed}); the report at "
            f"{exp_dir / REPORT} shows the finished ones; fix the cause and re-run the "
            "same command to finish the rest"
        )
    return headline


def _merge_sweep_spec(exp_dir: Path, base: RunConfig, entries: list[dict], overwrite: bool) -> dict:
    """Extend a sweep already on disk (same shared settings) with this grid: runs are only added."""
    old = read_experiment(exp_dir) if not overwrite else {}
    shared = json.loads(json.dumps(shared_settings(base)))  # as stored: tuples become lists
    if old.get("kind") == "sweep" and old.get("shared") == shared:

        def key(e: dict) -> tuple:
            return e["model"], e.get("lr", base.lr), e["n"], e["seed"]

        known = {key(e) for e in entries}
        entries = [e for e in old["runs"] if key(e) not in known] + entries
    entries.sort(key=lambda e: (e["model"], -e.get("lr", base.lr), e["n"], e["seed"]))
    return {
        "kind": "sweep",
        "shared": shared,
        "config": {k: v for k, v in base.to_dict().items() if k not in ("mode", "n", "model", "seed")},
        "models": sorted({e["model"] for e in entries}),
        "ns": sorted({e["n"] for e in entries}),
        "lrs": sorted({e.get("lr", base.lr) for e in entries}, reverse=True),
        "seeds": sorted({e["seed"] for e in entries}),
        "runs": entries,
    }


def run_many(
    runs: list[RunConfig], use_ray: bool = False, overwrite: bool = False, progress: bool = True, pack: int | None = 1
) -> list[tuple[str, str]]:
    """Run each config (finished ones return at once), `pack` at a time as one packed model; return
    (run folder, error) for failed runs (a failed pack fails each of its runs)."""
    packs = plan_packs(runs, pack)
    if use_ray:
        return run_on_ray(packs, overwrite=overwrite, progress=progress)
    failures = []
    for i, group in enumerate(packs, 1):
        names = ", ".join(cfg.out_dir for cfg in group)
        finished = all(runfolder.is_finished(cfg.out_dir) for cfg in group)
        log.info("pack %d/%d: %s%s", i, len(packs), names, " (finished: skipped)" if finished else "")
        try:
            if len(group) == 1:
                run_training(group[0], resume=True, overwrite=overwrite, progress=progress)
            else:
                run_packed(group, resume=True, overwrite=overwrite, progress=progress)
        except TrainError as exc:  # e.g. a folder holding another config: finish the other runs first
            log.error("%s: %s", names, exc)
            failures += [(cfg.out_dir, str(exc)) for cfg in group]
    return failures


def run_on_ray(packs: list[list[RunConfig]], overwrite: bool = False, progress: bool = True) -> list[tuple[str, str]]:
    """One Ray task per pack of runs: a whole GPU each when the cluster has GPUs, else one CPU each.

    Connects to the cluster in RAY_ADDRESS, or starts a local one. Tasks run in this process's
    working directory, so relative --data and --out mean the same there (on a multi-node cluster
    they must be on a shared filesystem). A failed pack does not stop the others; the failures are
    returned for the caller to report.
    """
    import ray  # deferred: heavy, and needed only with --ray

    options = {"num_gpus": 1} if start_ray() == "cuda" else {"num_cpus": 1}
    task = ray.remote(_run_pack).options(**options)
    folders = {
        task.remote([cfg.to_dict() for cfg in group], overwrite, os.getcwd()): [cfg.out_dir for cfg in group]
        for group in packs
    }
    log.info("%d packs of runs on Ray, each with %s", len(folders), options)
    failures, pending = [], list(folders)
    with tqdm(total=len(folders), desc="sweep packs", unit="pack", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except Exception as exc:  # any pack's failure is reported with the others, not raised
                failures += [(out, str(getattr(exc, "cause", None) or exc)) for out in folders[done[0]]]
            bar.update(1)
    return failures


def _run_pack(cfg_dicts: list[dict], overwrite: bool, cwd: str) -> list:
    """A Ray task: one run, or one pack of runs, resumed where checkpoints exist; returns their T(n)."""
    os.chdir(cwd)  # Ray starts workers elsewhere: relative paths are the driver's
    cfgs = [RunConfig.from_dict(d) for d in cfg_dicts]
    if len(cfgs) == 1:
        return [run_training(cfgs[0], resume=True, overwrite=overwrite, progress=False).get("fit_step")]
    return [s.get("fit_step") for s in run_packed(cfgs, resume=True, overwrite=overwrite, progress=False)]
