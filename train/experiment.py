"""Bootstrap and sweep experiments: Real World vs Ideal World runs made from one shared config.

    python -m train bootstrap --data DATASET --n 50000 --preset paper-cifar5m --out experiments/boot
    python -m train sweep --data DATASET --n 5000,10000 --model mcnn,preact-resnet18 --seeds 3 \
        --preset paper-cifar5m --out experiments/sweep [--ray]

From Python: `bootstrap(cfg)` and `sweep(cfg, ns=..., models=..., seeds=...)` return the report's
headline figures (`train.report.format_headline` prints them).

Folder layout of a bootstrap experiment (`<exp>` = cfg.out_dir):
    <exp>/experiment.json     kind "bootstrap", the shared config, the two run folders
    <exp>/real/  <exp>/ideal/ run folders (config.json, metrics.jsonl, summary.json, checkpoints)
    <exp>/report.md, soft_error.png, gap.png, results.json
Folder layout of a sweep:
    <exp>/experiment.json                  kind "sweep", base config, models, ns, seeds, every run
    <exp>/runs/<model>-s<seed>/ideal/      one Ideal run per (model, seed): the Ideal World has no n
    <exp>/runs/<model>-s<seed>/real-n<N>/  one Real run per (model, n, seed)
    <exp>/report.md, scatter.png, learning_curve.png, results.json

The two worlds of a comparison differ only in `mode`, `out_dir` and `n` (dataclasses.replace on one
config), so model and init seed, optimiser, schedule, batch, augmentation, precision and evaluation
steps are identical by construction. Re-running a command resumes: finished runs are skipped (the
trainer returns their summary) and killed ones continue from their checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path

from train.config import RunConfig, config_hash, identity_dict, validate
from train.errors import TrainError

log = logging.getLogger(__name__)

# Fields a sweep varies or a world sets: the rest of the config must match a sweep already on disk.
_GRID_FIELDS = ("mode", "n", "model", "seed", "out_dir")


def is_main_process() -> bool:
    """Under torchrun every rank trains, but only rank 0 writes experiment files and reports."""
    return os.environ.get("RANK", "0") == "0"


def world_configs(cfg: RunConfig, exp_dir: Path) -> tuple[RunConfig, RunConfig]:
    """The Real and the Ideal run of one comparison: the same config, two samplers, two folders."""
    real = dataclasses.replace(cfg, mode="real", out_dir=str(exp_dir / "real"))
    ideal = dataclasses.replace(cfg, mode="ideal", n=None, out_dir=str(exp_dir / "ideal"))
    return real, ideal


def bootstrap(cfg: RunConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Run Real (n) and Ideal with identical settings into cfg.out_dir, then write the report."""
    from train.loop import run_training
    from train.report import render_bootstrap

    exp_dir = Path(cfg.out_dir)
    real, ideal = world_configs(cfg, exp_dir)
    preflight([real, ideal])
    spec = {"kind": "bootstrap", "config": dataclasses.replace(cfg, mode="real").to_dict(),
            "config_hash": config_hash(real), "runs": {"real": "real", "ideal": "ideal"}}
    if is_main_process():
        _claim_experiment(exp_dir, spec, overwrite, same=lambda old: old.get("config_hash") == spec["config_hash"])
    for label, run_cfg in (("Real", real), ("Ideal", ideal)):
        log.info("%s World -> %s", label, run_cfg.out_dir)
        run_training(run_cfg, resume=resume, overwrite=overwrite, progress=progress)
    return render_bootstrap(exp_dir) if is_main_process() else {}


def preflight(cfgs: list[RunConfig]) -> None:
    """Validate every run and check pool sizes before any training, so no run dies hours in."""
    from shards import ShardsError, load_manifest
    from train.samplers import check_pool

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
                raise TrainError(f"--data {cfg.data}: no {cfg.train_split!r} split; it has "
                                 f"{', '.join(manifest.splits)}")
            pools[cfg.data] = manifest.splits[cfg.train_split].count
        pool = pools[cfg.data]
        if cfg.mode == "real" and cfg.n > pool:
            raise TrainError(f"--n={cfg.n:,}: larger than the train pool of {pool:,} samples in {cfg.data}; "
                             f"choose n <= {pool:,}")
        check_pool(cfg.mode, cfg.steps, cfg.batch_size, pool, cfg.allow_reuse)


def _claim_experiment(exp_dir: Path, spec: dict, overwrite: bool, same) -> None:
    """Write experiment.json, refusing a folder that holds another experiment unless overwrite."""
    path = exp_dir / "experiment.json"
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text())
        if old.get("kind") != spec["kind"] or not same(old):
            raise TrainError(f"{exp_dir}: holds another {old.get('kind')} experiment (different settings); "
                             "choose another --out or pass --overwrite")
    exp_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a killed command never leaves half a description


def folder_name(model: str) -> str:
    """`timm:vit_tiny_patch16_224` -> `timm-vit_tiny_patch16_224`: safe in paths on every OS."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model)


def plan_sweep(base: RunConfig, ns: list[int], models: list[str], seeds: list[int]) -> tuple[list[dict], list[RunConfig]]:
    """The grid's entries (for experiment.json) and its unique runs, Ideal runs first per (model, seed)."""
    exp_dir = Path(base.out_dir)
    ns, models, seeds = sorted(set(ns)), list(dict.fromkeys(models)), sorted(set(seeds))
    entries, runs = [], []
    for model in models:
        for seed in seeds:
            cell = f"runs/{folder_name(model)}-s{seed}"
            runs.append(dataclasses.replace(base, mode="ideal", n=None, model=model, seed=seed,
                                            out_dir=str(exp_dir / cell / "ideal")))
            for n in ns:
                runs.append(dataclasses.replace(base, mode="real", n=n, model=model, seed=seed,
                                                out_dir=str(exp_dir / cell / f"real-n{n}")))
                entries.append({"model": model, "n": n, "seed": seed, "real": f"{cell}/real-n{n}",
                                "ideal": f"{cell}/ideal"})
    return entries, runs


def shared_settings(cfg: RunConfig) -> dict:
    """What every run of a sweep shares: the run-defining config without the fields the grid varies."""
    return {k: v for k, v in identity_dict(cfg).items() if k not in _GRID_FIELDS}


def sweep(base: RunConfig, ns: list[int], models: list[str], seeds: list[int], use_ray: bool = False,
          overwrite: bool = False, progress: bool = True) -> dict:
    """Run (or finish) the grid n x models x seeds into base.out_dir, then write the sweep report.

    A run that fails with a user error (or any error on Ray) does not stop the others: the report is
    written from the finished runs and then a TrainError lists the failures.
    """
    from train.sweep_report import render_sweep

    if not ns or not models or not seeds:
        raise TrainError("a sweep needs at least one n, one model and one seed")
    exp_dir = Path(base.out_dir)
    entries, runs = plan_sweep(base, ns, models, seeds)
    preflight(runs)
    if is_main_process():
        spec = _merge_sweep_spec(exp_dir, base, entries, overwrite)
        _claim_experiment(exp_dir, spec, overwrite, same=lambda old: old.get("shared") == spec["shared"])
    failures = run_many(runs, use_ray=use_ray, overwrite=overwrite, progress=progress)
    if not is_main_process():
        return {}
    headline = render_sweep(exp_dir)
    if failures:
        listed = "; ".join(f"{path}: {error}" for path, error in failures)
        raise TrainError(f"{len(failures)} of {len(runs)} sweep runs failed ({listed}); the report at "
                         f"{exp_dir / 'report.md'} shows the finished ones; fix the cause and re-run the "
                         "same command to finish the rest")
    return headline


def _merge_sweep_spec(exp_dir: Path, base: RunConfig, entries: list[dict], overwrite: bool) -> dict:
    """Extend a sweep already on disk (same shared settings) with this grid: runs are only added."""
    path = exp_dir / "experiment.json"
    old = json.loads(path.read_text()) if path.is_file() and not overwrite else {}
    shared = json.loads(json.dumps(shared_settings(base)))  # as stored: tuples become lists
    if old.get("kind") == "sweep" and old.get("shared") == shared:
        known = {(e["model"], e["n"], e["seed"]) for e in entries}
        entries = [e for e in old["runs"] if (e["model"], e["n"], e["seed"]) not in known] + entries
    entries.sort(key=lambda e: (e["model"], e["n"], e["seed"]))
    return {
        "kind": "sweep", "shared": shared,
        "config": {k: v for k, v in base.to_dict().items() if k not in ("mode", "n", "model", "seed")},
        "models": sorted({e["model"] for e in entries}), "ns": sorted({e["n"] for e in entries}),
        "seeds": sorted({e["seed"] for e in entries}), "runs": entries,
    }


def run_many(runs: list[RunConfig], use_ray: bool = False, overwrite: bool = False,
             progress: bool = True) -> list[tuple[str, str]]:
    """Run each config (finished ones return at once); return (run folder, error) for failed runs."""
    if use_ray:
        return run_on_ray(runs, overwrite=overwrite, progress=progress)
    from train.loop import run_training

    failures = []
    for i, cfg in enumerate(runs, 1):
        finished = (Path(cfg.out_dir) / "summary.json").is_file()
        log.info("run %d/%d: %s%s", i, len(runs), cfg.out_dir, " (finished: skipped)" if finished else "")
        try:
            run_training(cfg, resume=True, overwrite=overwrite, progress=progress)
        except TrainError as exc:  # e.g. a folder holding another config: finish the other runs first
            log.error("%s: %s", cfg.out_dir, exc)
            failures.append((cfg.out_dir, str(exc)))
    return failures


def run_on_ray(runs: list[RunConfig], overwrite: bool = False, progress: bool = True) -> list[tuple[str, str]]:
    """One Ray task per run: a whole GPU each when the cluster has GPUs, else one CPU each.

    Connects to the cluster in RAY_ADDRESS, or starts a local one. Tasks run in this process's
    working directory, so relative --data and --out mean the same there (on a multi-node cluster
    they must be on a shared filesystem). A failed run does not stop the others; the failures are
    returned for the caller to report.
    """
    import ray
    from tqdm.auto import tqdm

    if not ray.is_initialized():
        ray.init()
    options = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) else {"num_cpus": 1}
    task = ray.remote(_run_one).options(**options)
    folders = {task.remote(cfg.to_dict(), overwrite, os.getcwd()): cfg.out_dir for cfg in runs}
    log.info("%d runs on Ray, each with %s", len(folders), options)
    failures, pending = [], list(folders)
    with tqdm(total=len(folders), desc="sweep runs", unit="run", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except Exception as exc:  # any run's failure is reported with the others, not raised
                failures.append((folders[done[0]], str(getattr(exc, "cause", None) or exc)))
            bar.update(1)
    return failures


def _run_one(cfg_dict: dict, overwrite: bool, cwd: str):
    """A Ray task: one run, resumed if a checkpoint exists; returns its T(n)."""
    from train.loop import run_training

    os.chdir(cwd)  # Ray starts workers elsewhere: relative paths are the driver's
    summary = run_training(RunConfig.from_dict(cfg_dict), resume=True, overwrite=overwrite, progress=False)
    return summary.get("fit_step")
