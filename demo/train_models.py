"""`python -m demo train-models` (`make demo-models`): train and measure the demo's two models.

    python -m demo train-models --out demo/models                  # a few minutes on 2 CPU cores
    python -m demo train-models --out demo/models --only labeler --overwrite   # the labeler alone

Trains, on the real train split (70%, seeded), a diffusion model saved as a diffusers DDPMPipeline
folder (`digits-ddpm/`) and a labeler trained by the trainer (`train.labeler.finetune` on the split
written as a dataset of ours; demo/labeler.py) and saved in timm's format (`digits-labeler/`, loaded with
`local-dir:`), then measures both from the saved folders: the labeler's accuracy on the real holdout
through the generator's labelling code; for the diffusion model, digits sampled with DPM-Solver++
(20 steps) and labelled by that labeler (mean confidence, class balance) and the synthetic-vs-real
classifier check. Each folder gets `training.json` (config, split, versions, wall time) and
`metrics.json`; a folder appears only when complete. `--only labeler` leaves the diffusion model's
weights as they are and measures it again with the new labeler (its metrics.json).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from demo.config import DDPM_DIR, LABELER_DIR, MODEL_NAMES, DemoModelsConfig
from demo.data import DigitsSplit, load_digits_split, write_real_digits
from demo.diffusion import load_pipeline, sample_digits, save_pipeline, train_diffusion
from demo.errors import DemoError
from demo.labeler import labeler_run_config, load_labeler, predict_proba
from demo.quality import DEFAULT_SIZES, label_stats, synthetic_vs_real
from shards.jsonio import read_json, write_json_atomic
from train import TRAINING, finetune

log = logging.getLogger(__name__)

REAL_DIGITS = "real-digits"  # the labeler's training data, written inside its temporary folder


def _versions() -> dict:
    import diffusers  # heavy, and needed only here: deferred so `--help` and `--dry-run` stay fast
    import sklearn
    import timm

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "timm": timm.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _fresh_dir(out_dir: Path, name: str, overwrite: bool) -> Path:
    """A temporary sibling of `out_dir/name`, renamed into place when complete (no half-written model)."""
    final = out_dir / name
    if final.exists() and not overwrite:
        raise DemoError(f"{final}: already exists; pass --overwrite to retrain and replace it")
    tmp = out_dir / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit_dir(tmp: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _train_labeler_folder(split: DigitsSplit, cfg: DemoModelsConfig, out_dir: Path, overwrite: bool) -> dict:
    """The trainer's finetune run on the real split (from scratch), exported in timm's format, measured."""
    tmp = _fresh_dir(out_dir, LABELER_DIR, overwrite)
    write_real_digits(tmp / REAL_DIGITS, split.seed)
    run_cfg = labeler_run_config(tmp / REAL_DIGITS, tmp, cfg.labeler_steps, cfg.seed, cfg.device)
    start = time.perf_counter()
    result = finetune(run_cfg)
    wall_s = time.perf_counter() - start
    _drop_scratch_paths(tmp)
    labeler = load_labeler(tmp)  # measure what was saved, as the generator will apply it
    probs = predict_proba(labeler, split.holdout_images)
    summary = result["summary"]
    metrics = {
        "holdout_accuracy": float((probs.argmax(axis=1) == split.holdout_labels).mean()),
        "train_accuracy": float(
            (predict_proba(labeler, split.train_images).argmax(axis=1) == split.train_labels).mean()
        ),
        "holdout": label_stats(probs),
        "holdout_ece": result["eval"]["ece"],
        "fit_step": summary["fit_step"],
    }
    write_json_atomic(tmp / "metrics.json", metrics)
    write_json_atomic(
        tmp / "training.json",
        {
            "trainer": "train.labeler.finetune (python -m train finetune)",
            "config": _portable(run_cfg.to_dict()),
            "device": cfg.device,
            "threads": cfg.threads,
            "data": split.describe(),
            "versions": _versions(),
            "steps": summary["steps_done"],
            "epochs": round(summary["final"]["epoch"], 1),
            "wall_s": round(wall_s, 1),
        },
    )
    _commit_dir(tmp, out_dir / LABELER_DIR)
    log.info(
        "labeler: holdout accuracy %.4f (%d digits), trained in %.0f s", metrics["holdout_accuracy"], len(probs), wall_s
    )
    return metrics


def _portable(run_config: dict) -> dict:
    """The run's config with its scratch paths (gone once the folder is committed) as folder names."""
    return {**run_config, "data": REAL_DIGITS, "out_dir": TRAINING}


def _drop_scratch_paths(folder: Path) -> None:
    """Remove the dataset and the run folder (checkpoints) the export no longer needs, and the machine's
    paths from the exported config.json, so the folder can ship."""
    for name in (REAL_DIGITS, TRAINING):
        shutil.rmtree(folder / name)
    config = read_json(folder / "config.json")
    config["finetune"] = _portable(config["finetune"])
    # test_resnet's pretrained_cfg keeps timm's ImageNet tag; these weights were trained from scratch here.
    config["pretrained_cfg"]["tag"] = "digits_demo"
    write_json_atomic(folder / "config.json", config)


def _train_ddpm_folder(split: DigitsSplit, cfg: DemoModelsConfig, out_dir: Path, overwrite: bool) -> dict:
    tmp = _fresh_dir(out_dir, DDPM_DIR, overwrite)
    start = time.perf_counter()
    unet, scheduler = train_diffusion(split.train_images, cfg.diffusion, device=cfg.device)
    wall_s = time.perf_counter() - start
    save_pipeline(unet.cpu(), scheduler, tmp)
    metrics = measure_generator(tmp, out_dir / LABELER_DIR, split, cfg)
    write_json_atomic(tmp / "metrics.json", metrics)
    write_json_atomic(
        tmp / "training.json",
        {
            "config": asdict(cfg.diffusion),
            "device": cfg.device,
            "threads": cfg.threads,
            "parameters": sum(p.numel() for p in unet.parameters()),
            "data": split.describe(),
            "versions": _versions(),
            "wall_s": round(wall_s, 1),
        },
    )
    _commit_dir(tmp, out_dir / DDPM_DIR)
    return metrics


def measure_generator(ddpm_dir: Path, labeler_dir: Path, split: DigitsSplit, cfg: DemoModelsConfig) -> dict:
    """Sample digits from a saved pipeline folder, label them with the saved labeler, and compare a
    classifier trained on them with one trained on real digits (both tested on the real holdout)."""
    unet, scheduler = load_pipeline(ddpm_dir)
    start = time.perf_counter()
    images = sample_digits(
        unet.to(cfg.device), scheduler, cfg.quality_samples, steps=cfg.quality_steps, seed=cfg.quality_seed
    )
    sample_s = time.perf_counter() - start
    probs = predict_proba(load_labeler(labeler_dir), images)
    sizes = tuple(n for n in DEFAULT_SIZES if n <= cfg.quality_samples) or (cfg.quality_samples,)
    check = synthetic_vs_real(images, probs.argmax(axis=1), split, sizes=sizes, seed=cfg.quality_seed)
    stats = label_stats(probs)
    log.info(
        "diffusion: %d samples in %.0f s; labeler mean confidence %.3f, class counts %s",
        len(images),
        sample_s,
        stats["mean_confidence"],
        stats["class_counts"],
    )
    for row in check["rows"]:
        log.info(
            "  n=%d: trained on synthetic %.4f vs on real %.4f (real holdout accuracy)",
            row["n"],
            row["synthetic_to_real_accuracy"],
            row["real_to_real_accuracy"],
        )
    return {
        "sampler": f"DPMSolverMultistepScheduler, {cfg.quality_steps} steps, seed {cfg.quality_seed}",
        "samples_per_s": round(len(images) / sample_s, 1),
        "labels": stats,
        "synthetic_vs_real": check,
    }


def train_models(out_dir: str | Path, cfg: DemoModelsConfig, overwrite: bool = False) -> dict:
    """Train and measure the demo models named in cfg.only into `out_dir`/{digits-labeler, digits-ddpm}."""
    cfg.validate()
    out_dir = Path(out_dir)
    for name in (MODEL_NAMES[key] for key in cfg.only):
        if (out_dir / name).exists() and not overwrite:
            raise DemoError(f"{out_dir / name}: already exists; pass --overwrite to retrain and replace it")
    if "labeler" not in cfg.only and not (out_dir / LABELER_DIR / "config.json").is_file():
        raise DemoError(
            f"{out_dir / LABELER_DIR}: not found; the diffusion model is measured with the labeler: "
            "train it too (drop --only) or first with --only labeler"
        )
    split = load_digits_split(cfg.split_seed)
    log.info(
        "real digits: %d train, %d holdout (split seed %d)",
        len(split.train_labels),
        len(split.holdout_labels),
        split.seed,
    )
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    metrics = {}
    try:
        if "labeler" in cfg.only:  # first: the diffusion model's measurement labels with it
            metrics[LABELER_DIR] = _train_labeler_folder(split, cfg, out_dir, overwrite)
        if "ddpm" in cfg.only:
            metrics[DDPM_DIR] = _train_ddpm_folder(split, cfg, out_dir, overwrite)
        elif (out_dir / DDPM_DIR / "model_index.json").is_file():
            # Its metrics are of its samples as this labeler labels them: measured again with the new one.
            metrics[DDPM_DIR] = measure_generator(out_dir / DDPM_DIR, out_dir / LABELER_DIR, split, cfg)
            write_json_atomic(out_dir / DDPM_DIR / "metrics.json", metrics[DDPM_DIR])
    finally:
        torch.set_num_threads(threads_before)
    return metrics
