"""Fine-tune a classifier (the labeler) with the trainer, save it in timm's own format, and measure it.

    summary = finetune(apply_preset("bit-hyperrule", {"data": "out/cifar10", "out_dir": "out/labeler"}))

1. the trainer runs one Real World run over the whole train split into OUT/training (config, metrics,
   checkpoints: resumable like any run), with the preset's schedule, mixup and zero-initialised head;
2. the trained weights are exported with `timm.models.save_for_hf` into OUT (model.safetensors, then
   config.json with `label_names` and a `pretrained_cfg` describing the preprocessing the model was
   trained with: input size, bilinear resize, mean = std = 0.5), so `local-dir:OUT` loads with timm;
3. the exported folder is loaded back and evaluated on the test split; `label_accuracy` and
   `label_accuracy_on` (plus per-class accuracy and ECE) are written into its config.json.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import torch

import shards
from shards.jsonio import read_json, write_json_atomic
from shards.runtime import resolve_device
from train.core.config import RunConfig, validate
from train.core.models import build_model
from train.data.datasets import open_dataset
from train.errors import TrainError
from train.labeler.evaluate import EvalResult, evaluate_classifier, load_classifier
from train.run import runfolder
from train.run.loop import run_training

log = logging.getLogger(__name__)

TRAINING = "training"  # the run folder inside OUT
EXPORT_TMP = ".export"


def _check_out(out: Path) -> None:
    """OUT may be new or a folder `train finetune` wrote; never another timm model's folder."""
    config = out / "config.json"
    if config.is_file() and "finetune" not in (_read(config) or {}):
        raise TrainError(
            f"--out={out}: holds a model config.json not written by `train finetune`; choose "
            "another --out (nothing there is changed)"
        )
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out={out}: exists and is not a folder; choose another --out")


def _read(path: Path):
    try:
        return read_json(path, default=None)
    except (shards.ShardsError, OSError):
        return None


def run_config(cfg: RunConfig) -> RunConfig:
    """The trainer's run: the Real World over the whole train split, into OUT/training."""
    ds = open_dataset(cfg.data, verify=False)
    pool = ds.split(cfg.train_split).count
    return dataclasses.replace(cfg, mode="real", n=pool, out_dir=str(Path(cfg.out_dir) / TRAINING))


def _trained_model(run_cfg: RunConfig, num_classes: int, channels: int) -> torch.nn.Module:
    # The architecture without downloading pretrained weights again; the weights come from the checkpoint.
    model = build_model(dataclasses.replace(run_cfg, pretrained=False), num_classes, channels, run_cfg.image_size)
    model.load_state_dict(runfolder.load_checkpoint(run_cfg.out_dir)["model"])
    return model.eval()


def export_timm(model: torch.nn.Module, out: Path, class_names: list[str], channels: int, run_cfg: RunConfig) -> None:
    """Write model.safetensors and config.json (last: its presence means the folder is complete)."""
    from timm.models import save_for_hf  # deferred: heavy (seconds)

    size = run_cfg.image_size
    # The trainer's input: bilinear resize to `size`, uint8 / 255 then (x - 0.5) / 0.5 (train.core.augment),
    # or uint8 / 255 alone with --input-range unit.
    mean, std = (0.5, 0.5) if run_cfg.input_range == "signed" else (0.0, 1.0)
    data_config = {
        "input_size": (channels, size, size),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": (mean,) * channels,
        "std": (std,) * channels,
    }
    tmp = out / EXPORT_TMP
    shutil.rmtree(tmp, ignore_errors=True)  # our own scratch folder from an interrupted export
    save_for_hf(
        model,
        str(tmp),
        model_config={"label_names": list(class_names), "pretrained_cfg": data_config, "finetune": run_cfg.to_dict()},
        data_config=data_config,
        safe_serialization=True,
    )
    os.replace(tmp / "model.safetensors", out / "model.safetensors")
    os.replace(tmp / "config.json", out / "config.json")
    shutil.rmtree(tmp, ignore_errors=True)


def record_accuracy(folder: Path, result: EvalResult) -> None:
    """Write the measurement into the model's config.json, where `cifar5m generate` reads it."""
    config = read_json(folder / "config.json")
    config.update(
        label_accuracy=result.accuracy,
        label_accuracy_on=result.on,
        label_ece=result.ece,
        label_per_class_accuracy=result.per_class,
    )
    write_json_atomic(folder / "config.json", config)


def finetune(cfg: RunConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Train, export and measure; returns {"summary", "eval", "out"} (eval None on torchrun ranks > 0).

    cfg.mode and cfg.n are set here: one Real World run over the whole train split."""
    run_cfg = run_config(cfg)
    validate(run_cfg)
    if not cfg.model.startswith("timm:"):
        raise TrainError(
            f"--model={cfg.model}: finetune saves timm models; give timm:NAME (e.g. timm:resnetv2_152x2_bit.goog_in21k)"
        )
    if cfg.image_size is None:
        raise TrainError("--image-size is not set: the exported model records its input size; pass it (BiT: 128)")
    out = Path(cfg.out_dir)
    _check_out(out)
    summary = run_training(run_cfg, resume=resume, overwrite=overwrite, progress=progress)
    if os.environ.get("RANK", "0") != "0":
        return {"summary": summary, "eval": None, "out": str(out)}
    manifest = open_dataset(cfg.data, verify=False).manifest
    channels = manifest.image_shape[2] if manifest.image_shape else 3
    model = _trained_model(run_cfg, len(manifest.class_names), channels)
    export_timm(model, out, manifest.class_names, channels, run_cfg)
    device = resolve_device(cfg.device, TrainError)
    result = evaluate_classifier(
        load_classifier(f"local-dir:{out.resolve()}"), cfg.data, cfg.test_split, device, batch_size=cfg.eval_batch_size
    )
    record_accuracy(out, result)
    log.info(
        "%s: test accuracy %.2f%% on %s (ECE %.4f); use it as --labeler local-dir:%s",
        out,
        100 * result.accuracy,
        result.on,
        result.ece,
        out,
    )
    return {"summary": summary, "eval": result.to_dict(), "out": str(out)}
