"""`make demo`: the whole Deep Bootstrap pipeline at miniature scale on scikit-learn's real digits.

    python -m demo run                        # out/demo; ~7 min on 2 CPU cores, offline
    python -m demo run --train 8000 --steps 60 --out out/demo-small   # a quicker look

Stages, each logged with its wall time; re-running the same command resumes (committed shards and
finished runs are kept, a killed run continues from its checkpoint) only where a stage's inputs are the
same by content (<out>/stages.json, demo/stages.py): otherwise --overwrite redoes it, and without it the
run is refused:
1. models: the shipped digits diffusion model and labeler (demo/models), trained if missing;
2. real digits -> <out>/real-digits (train = the models' 70% train split, test = the 30% holdout);
3. synthetic digits -> <out>/synthetic, through `cifar5m generate`'s own entry calls (cifar5m.plan_generation,
   then cifar5m.run_plan: one process per core on CPU, cifar5m/runners/processes.py, the bytes of a
   single-process run);
4. (with --min-confidence > 0) confident digits: the synthetic digits the labeler is sure of -> <out>/confident
   (demo/confident.py), the pool both worlds train and test on;
5. generator quality: the labeler on the real holdout, and a classifier trained on the pool's digits
   vs one trained on real digits, both tested on the real holdout -> <out>/quality.json;
6. bootstrap: Real World (n) vs Ideal World on that pool, --seeds of each (10 by default), the real holdout
   as an extra test set -> <out>/bootstrap/report.md (the paired gap at T(n) with its 95% CI, p-value and
   equivalence test against the margin declared in demo/config.py, and its power; its generator and "what
   the miniature can show" sections come from here);
then a summary of the headline figures and the stage times (also in <out>/demo.json).
The trainer settings are fixed defaults chosen for speed and so that the Ideal World never reuses a
sample; seeds, test size, label filter and evaluation steps were chosen so that the verdict resolves
(demo/config.py), not to make the gap small, and the report states it as it comes out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from cifar5m import GenerateConfig, plan_generation, run_plan, run_with_bar
from demo.confident import write_confident_subset
from demo.config import DemoConfig
from demo.data import CLASS_NAMES, load_all_digits, load_digits_split, write_real_digits
from demo.errors import DemoError
from demo.labeler import load_labeler, predict_proba
from demo.quality import generator_quality
from demo.report import (
    REAL_TEST_NAME,
    format_summary,
    generator_markdown,
    miniature_markdown,
    pct,
    power_sentence,
    rows_text,
)
from demo.stages import StageKey, claim_stage, dataset_sha256, model_sha256
from demo.train_models import DDPM_DIR, LABELER_DIR, DemoModelsConfig, train_models
from shards import load_manifest, resolve_device
from shards.jsonio import read_json, write_json_atomic, write_text_atomic
from train import Margin, RunConfig, bootstrap, config_hash, render_bootstrap, world_configs

log = logging.getLogger(__name__)

# Train error (and so T(n)) is measured on a fixed subset of at most this many Real World samples: 1% is
# 10 errors, and evaluating it at every evaluation step stays cheap.
EVAL_TRAIN_SAMPLES = 1_000
# A check on the label-ambiguity regime: the share of generated digits whose labeler top probability is below
# this (a bin edge of the generator's 20-bin confidence histogram, cifar5m/generate.py).
UNSURE_BELOW = 0.9


class Stages:
    """Numbered stages, each announced and then logged with its wall time; the times kept for the summary."""

    def __init__(self, total: int):
        self.times: list[tuple[str, float]] = []
        self.total, self.start = total, time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str):
        number = len(self.times) + 1
        log.info("[%d/%d] %s ...", number, self.total, name)
        start = time.perf_counter()
        yield
        wall_s = time.perf_counter() - start
        self.times.append((name, wall_s))
        log.info("[%d/%d] %s: done in %.1f s", number, self.total, name, wall_s)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def run_demo(cfg: DemoConfig) -> dict:
    """Run (or finish) every stage into cfg.out_dir; return the figures the summary prints."""
    cfg.validate()
    threads_before = torch.get_num_threads()
    stages = Stages(total=6 if cfg.min_confidence else 5)
    log.info(
        "demo into %s (%d generation workers on CPU, %d torch threads here); settings: %s",
        cfg.out,
        cfg.cpu_workers,
        cfg.threads,
        json.dumps(dataclasses.asdict(cfg)),
    )
    try:
        torch.set_num_threads(cfg.threads)
        with stages.stage("models"):
            models = resolve_models(cfg)
        with stages.stage("real digits"):
            real_dir = write_real(cfg)
        with stages.stage(f"synthetic digits ({cfg.train:,} train + {cfg.test:,} test)"):
            synthetic_dir = generate_synthetic(cfg, models)
        pool_dir = synthetic_dir
        if cfg.min_confidence:
            with stages.stage(f"confident digits (labeler top probability >= {cfg.min_confidence})"):
                pool_dir = confident_pool(cfg, synthetic_dir)
        with stages.stage("generator quality"):
            quality = measure_quality(cfg, models, synthetic_dir, pool_dir)
        with stages.stage(f"bootstrap: Real (n = {cfg.n:,}) vs Ideal, {cfg.seeds} seeds, {cfg.steps:,} steps each"):
            headline, power = run_bootstrap(cfg, pool_dir, real_dir, quality)
    finally:
        torch.set_num_threads(threads_before)
    result = {
        "headline": headline,
        "power": power,
        "quality": quality,
        "models": models["recorded"],
        "stages": [{"name": n, "wall_s": round(s, 1)} for n, s in stages.times],
        "total_s": round(stages.elapsed(), 1),
    }
    write_json_atomic(cfg.out / "demo.json", result)
    print(format_summary(cfg, result))
    return result


def resolve_models(cfg: DemoConfig) -> dict:
    """The model folders to use: cfg.models_dir if both are there, else both trained into <out>/models."""

    def complete(folder: Path) -> bool:
        return (folder / DDPM_DIR / "model_index.json").is_file() and (folder / LABELER_DIR / "config.json").is_file()

    folder = Path(cfg.models_dir)
    if not complete(folder):
        trained = cfg.out / "models"
        log.warning(
            "demo models not found in %s (%s/ and %s/)%s",
            folder,
            DDPM_DIR,
            LABELER_DIR,
            f"; using the ones an earlier run trained in {trained}"
            if complete(trained)
            else f": training them into {trained} first, ~10 minutes on 2 CPU cores (`make demo-models` "
            "writes them where the demo looks)",
        )
        folder = trained
        if not complete(folder):
            # Their trainers' batches are small too: 1 thread (see DemoModelsConfig.threads).
            train_models(folder, DemoModelsConfig(split_seed=cfg.split_seed), overwrite=True)
    ddpm, labeler = folder / DDPM_DIR, folder / LABELER_DIR
    recorded = {
        "ddpm": read_json(ddpm / "metrics.json", {}),
        "labeler": read_json(labeler / "metrics.json", {}),
        "ddpm_training": _training_brief(ddpm),
        "labeler_training": _training_brief(labeler),
    }
    _check_split(cfg, ddpm, labeler)
    log.info("models from %s: %s", folder, _recorded_text(recorded))
    return {"ddpm": ddpm, "labeler": labeler, "recorded": recorded}


def _recorded_text(recorded: dict) -> str:
    """What the model folders say about themselves (metrics.json, training.json), or that they say nothing."""
    ddpm, training = recorded["ddpm"], recorded["ddpm_training"]
    accuracy = recorded["labeler"].get("holdout_accuracy")
    size = (
        f"{training['parameters']:,} parameters, {training['steps']} training steps; " if training["parameters"] else ""
    )
    return (
        f"labeler accuracy on the real holdout {pct(accuracy) if accuracy is not None else 'not recorded'}; "
        f"diffusion model {size}classifier trained on its samples vs on real digits (real holdout accuracy): "
        f"{rows_text(ddpm.get('synthetic_vs_real', {})) if ddpm else 'not recorded'}"
    )


def _training_brief(model_dir: Path) -> dict:
    training = read_json(model_dir / "training.json", {})
    return {
        "steps": training.get("config", {}).get("steps"),
        "epochs": training.get("epochs", training.get("config", {}).get("epochs")),
        "parameters": training.get("parameters"),
        "wall_s": training.get("wall_s"),
        "split_seed": training.get("data", {}).get("split_seed"),
    }


def _check_split(cfg: DemoConfig, *model_dirs: Path) -> None:
    """The real holdout is only a fair test if the models never saw it: same split seed as training."""
    for model_dir in model_dirs:
        seed = _training_brief(model_dir)["split_seed"]
        if seed is not None and seed != cfg.split_seed:
            raise DemoError(
                f"{model_dir}: trained on the real split of seed {seed}, the demo uses "
                f"--split-seed {cfg.split_seed}; pass --split-seed {seed} so its holdout stays unseen"
            )


def write_real(cfg: DemoConfig) -> Path:
    out = cfg.out / "real-digits"
    images, labels = load_all_digits()
    source = hashlib.sha256(images.tobytes() + labels.astype("<i8").tobytes()).hexdigest()
    claim_stage(
        cfg.out, StageKey("real-digits", {"split_seed": cfg.split_seed}, {"digits": source}), out, cfg.overwrite
    )
    manifest = write_real_digits(out, cfg.split_seed, samples_per_shard=500, overwrite=cfg.overwrite)
    log.info("real digits in %s: %s", out, {name: s.count for name, s in manifest.splits.items()})
    return out


def generate_synthetic(cfg: DemoConfig, models: dict) -> Path:
    """The synthetic digits dataset, made exactly as `python -m cifar5m generate` makes CIFAR-5m: through the
    same entry calls (plan_generation, then run_plan under its progress bar), so the runner is chosen the same
    way (one process per core on CPU; the worker count decides no byte)."""
    out = cfg.out / "synthetic"
    workers = cfg.cpu_workers if resolve_device(cfg.device).type == "cpu" else 1
    gen = GenerateConfig(
        out_dir=str(out),
        labeler=f"local-dir:{models['labeler']}",
        class_names=tuple(CLASS_NAMES),
        model=str(models["ddpm"]),
        sampler="dpmpp",
        steps=cfg.gen_steps,
        train=cfg.train,
        test=cfg.test,
        samples_per_shard=cfg.samples_per_shard,
        seed=cfg.seed,
        batch_size=cfg.gen_batch_size,
        device=cfg.device,
        workers=workers,
        overwrite=cfg.overwrite,
    ).validate()
    # What decides the bytes; the weights are inputs by content, not by path.
    settings = {
        k: v
        for k, v in dataclasses.asdict(gen).items()
        if k not in ("out_dir", "labeler", "model", "overwrite", "dry_run", "workers", "ray", "ray_address")
    }
    claim_stage(
        cfg.out,
        StageKey(
            "synthetic", settings, {"ddpm": model_sha256(models["ddpm"]), "labeler": model_sha256(models["labeler"])}
        ),
        out,
        cfg.overwrite,
    )
    log.info(
        "same as: python -m cifar5m generate --model %s --labeler %s --class-names %s --sampler dpmpp "
        "--steps %d --train %d --test %d --shard-size %d --seed %d --batch-size %d --workers %d --out %s",
        gen.model,
        gen.labeler,
        ",".join(CLASS_NAMES),
        gen.steps,
        gen.train,
        gen.test,
        gen.samples_per_shard,
        gen.seed,
        gen.batch_size,
        workers,
        out,
    )
    plan = plan_generation(gen)
    run_with_bar(plan, lambda bar: run_plan(plan, bar))
    return out


def confident_pool(cfg: DemoConfig, synthetic_dir: Path) -> Path:
    """The synthetic digits whose labeler top probability is >= cfg.min_confidence (demo/confident.py),
    checked to still hold the Ideal World's draws and the Real World's n."""
    out = cfg.out / "confident"
    source = dataset_sha256(synthetic_dir)
    claim_stage(
        cfg.out,
        StageKey(
            "confident",
            {"min_confidence": cfg.min_confidence, "samples_per_shard": cfg.samples_per_shard},
            {"synthetic": source},
        ),
        out,
        cfg.overwrite,
    )
    manifest = write_confident_subset(
        synthetic_dir, out, cfg.min_confidence, source, cfg.samples_per_shard, overwrite=cfg.overwrite
    )
    kept = manifest.splits["train"].count
    if kept < max(cfg.steps * cfg.batch_size, cfg.n):
        raise DemoError(
            f"{out}: {kept:,} of the {cfg.train:,} synthetic train digits have labeler top probability "
            f">= {cfg.min_confidence}, fewer than the {max(cfg.steps * cfg.batch_size, cfg.n):,} the "
            "bootstrap draws; raise --train or lower --min-confidence"
        )
    log.info("confident digits in %s: %s", out, manifest.config["kept_fraction"])
    return out


def measure_quality(cfg: DemoConfig, models: dict, synthetic_dir: Path, pool_dir: Path) -> dict:
    """Labeler accuracy on the real holdout (through the generator's labelling path) and the
    synthetic-vs-real classifier check on the train split of the pool the worlds train on."""
    path = cfg.out / "quality.json"
    quality = {
        "labeler_holdout": labeler_holdout_accuracy(models["labeler"], cfg.split_seed),
        "synthetic_vs_real": generator_quality(pool_dir, "train", cfg.split_seed, cfg.quality_sizes, seed=cfg.seed),
        "synthetic_labels": _label_summary(synthetic_dir, pool_dir),
    }
    write_json_atomic(path, quality)
    log.info(
        "labeler on the real holdout: %s; synthetic->real vs real->real: %s",
        pct(quality["labeler_holdout"]["accuracy"]),
        rows_text(quality["synthetic_vs_real"]),
    )
    return quality


def labeler_holdout_accuracy(labeler_dir: Path, split_seed: int) -> dict:
    """The labeler as the generator applies it (cifar5m.label.Labeler) on the real digits it never saw."""
    split = load_digits_split(split_seed)
    probs = predict_proba(load_labeler(labeler_dir), split.holdout_images)
    correct = probs.argmax(axis=1) == split.holdout_labels
    return {
        "accuracy": float(correct.mean()),
        "count": int(len(correct)),
        "errors": int((~correct).sum()),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }


def _label_summary(synthetic_dir: Path, pool_dir: Path) -> dict:
    """The labeler's mean confidence on all generated digits and the fraction it is unsure of (top
    probability below UNSURE_BELOW, from the extras' histogram), the pool's train class histogram and, for
    a confidence-filtered pool, the fraction of each split it kept (its manifest config)."""
    extras = read_json(synthetic_dir / "extras" / "summary.json", {})  # written with the manifest
    pool = load_manifest(pool_dir)
    hist = extras.get("max_prob_histogram") or {"bins": [], "counts": []}
    unsure = sum(c for c, low in zip(hist["counts"], hist["bins"]) if low < UNSURE_BELOW)
    return {
        "mean_confidence": extras.get("mean_max_prob"),
        "train_histogram": pool.splits["train"].label_histogram,
        "unsure_fraction": unsure / sum(hist["counts"]) if sum(hist["counts"]) else None,
        "min_confidence": pool.config.get("min_confidence"),
        "kept_fraction": pool.config.get("kept_fraction"),
    }


def run_bootstrap(cfg: DemoConfig, synthetic_dir: Path, real_dir: Path, quality: dict) -> tuple[dict, str]:
    """Real (n) vs Ideal on the synthetic pool, cfg.seeds of each, one config, tested against cfg.margin;
    the demo's sections (generator, limits, power) go in the report. Returns its headline and the power."""
    exp = cfg.out / "bootstrap"
    run_cfg = RunConfig(
        data=str(synthetic_dir),
        n=cfg.n,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        optimizer="sgd",
        momentum=cfg.momentum,
        schedule="cosine",
        model=cfg.model,
        width=cfg.width,
        seed=cfg.seed,
        device=cfg.device,
        out_dir=str(exp),
        eval_schedule=cfg.eval_schedule,
        eval_train_samples=min(cfg.n, EVAL_TRAIN_SAMPLES),
        extra_test=(f"{REAL_TEST_NAME}={real_dir}",),
        num_workers=0,
        data_path="memory",
        checkpoint_every_steps=max(1, cfg.steps // 4),
        precision="fp32",
    )
    settings = {"run": config_hash(world_configs(run_cfg, exp)[0]), "seeds": cfg.seeds, "margin": cfg.margin}
    claim_stage(
        cfg.out,
        StageKey(
            "bootstrap", settings, {"synthetic": dataset_sha256(synthetic_dir), "real-digits": dataset_sha256(real_dir)}
        ),
        exp,
        cfg.overwrite,
    )
    (exp / "sections").mkdir(parents=True, exist_ok=True)
    write_text_atomic(exp / "sections" / "generator.md", generator_markdown(cfg, quality, synthetic_dir))
    write_text_atomic(exp / "sections" / "miniature.md", miniature_markdown(cfg))
    headline = bootstrap(
        run_cfg, seeds=cfg.seeds, resume=True, progress=True, pack=cfg.pack, margin=Margin.parse(cfg.margin)
    )
    power = power_sentence(read_json(exp / "results.json")["statistics"]["test"]["soft_error"])
    write_text_atomic(exp / "sections" / "power.md", f"## Power\n\n{power}\n")
    headline = render_bootstrap(exp)  # again, with the power section
    return headline, power
