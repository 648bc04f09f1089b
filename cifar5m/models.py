"""Find and check the diffusion model: a Hub id or a local diffusers pipeline folder.

A pipeline folder holds `model_index.json`, `unet/` (a `UNet2DModel`) and `scheduler/` (its training
noise schedule). Hub ids are downloaded into the Hugging Face cache once (only those three parts), so
every later step reads a local folder. Everything here reads JSON only; `load_unet` loads the weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar5m.config import PRESETS
from cifar5m.errors import Cifar5mError
from shards.errors import ShardsError
from shards.identity import InputIdentity, identify_files, portable_path
from shards.jsonio import read_json_object

PIPELINE_PARTS = ["model_index.json", "unet/*", "scheduler/*"]
# Schedulers whose config is a discrete beta schedule over `num_train_timesteps` (DDPM-style training):
# the presets rebuild their own scheduler from it. Others (VE/SDE, EDM/Karras sigmas, flow matching)
# describe a different noise process that the presets would silently get wrong.
BETA_SCHEDULERS = {
    "DDPMScheduler",
    "DDIMScheduler",
    "PNDMScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "UniPCMultistepScheduler",
    "DEISMultistepScheduler",
}
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


@dataclass(frozen=True)
class PipelineInfo:
    """A resolved pipeline folder and what its configs say."""

    source: str  # Hub id as given, or the folder's absolute path
    path: str
    unet_config: dict[str, Any]
    scheduler_config: dict[str, Any]
    weights: InputIdentity | None = None  # what the files are: set by resolve_pipeline

    @property
    def name(self) -> str:
        """How the dataset records the model: the Hub id, or the folder's own name (never its path)."""
        assert self.weights is not None, "resolve_pipeline identifies the model"
        return self.weights.name

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the UNet makes."""
        size = self.unet_config.get("sample_size")
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return int(self.unet_config.get("in_channels", 3)), int(height), int(width)


def resolve_pipeline(model: str) -> PipelineInfo:
    """A local folder, or a Hub id fetched into the HF cache; raise Cifar5mError when neither works."""
    folder = Path(model).expanduser()
    if folder.exists():
        info = read_pipeline(str(folder.resolve()), folder.resolve())
        return dataclasses.replace(info, weights=pipeline_identity(folder.resolve(), portable_path(folder)))
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise Cifar5mError(
            f"--model {model}: no such folder, and not a Hub id (ORG/NAME); give a diffusers "
            "pipeline folder (model_index.json, unet/, scheduler/) or a Hub id"
        )
    snapshot = _download(model)
    # snapshot_download returns the cache's `snapshots/<commit>` folder: the revision the files are from.
    info = read_pipeline(model, snapshot)
    return dataclasses.replace(info, weights=pipeline_identity(snapshot, model, revision=snapshot.name))


def pipeline_identity(folder: Path, name: str, revision: str | None = None) -> InputIdentity:
    """The sha256 of every file the pipeline is loaded from (model_index.json, unet/*, scheduler/*)."""
    files = ["model_index.json"] if (folder / "model_index.json").is_file() else []
    for part in ("unet", "scheduler"):
        files += sorted(f"{part}/{p.name}" for p in (folder / part).iterdir() if p.is_file())
    try:
        return identify_files(name, folder, files, revision)
    except ShardsError as exc:
        raise Cifar5mError(f"--model {name}: {exc}") from None


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download  # heavy: loaded only when this is used

    try:
        return Path(snapshot_download(repo_id, allow_patterns=PIPELINE_PARTS))
    except Exception as exc:  # noqa: BLE001 - every hub failure (offline, 404, auth, bad id) ends the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Cifar5mError(
            f"--model {repo_id}: cannot get it from the Hugging Face Hub ({type(exc).__name__}: {reason}). "
            f"Without network, download it where there is some (`hf download {repo_id} --local-dir DIR`), "
            "copy DIR here and pass --model DIR (a diffusers pipeline folder: model_index.json, unet/, scheduler/)"
        ) from None


def read_pipeline(source: str, path: Path) -> PipelineInfo:
    """Read and check the UNet and scheduler configs of a pipeline folder."""
    missing = [p for p in ("unet/config.json", "scheduler/scheduler_config.json") if not (path / p).is_file()]
    if missing:
        raise Cifar5mError(
            f"--model {source}: {path} is not a diffusers pipeline folder (missing "
            f"{', '.join(missing)}); it needs model_index.json, unet/ and scheduler/"
        )
    info = PipelineInfo(
        source, str(path), _read_json(path / "unet/config.json"), _read_json(path / "scheduler/scheduler_config.json")
    )
    check_unet(info)
    check_scheduler_config(info)
    return info


def _read_json(path: Path) -> dict[str, Any]:
    """A model config: a JSON object (the checks read its keys), else a ShardsError naming the file."""
    return read_json_object(
        path,
        fix="re-download or re-save the model",
        expected="an object of settings (diffusers writes one with _class_name and the model's settings)",
    )


def check_unet(info: PipelineInfo) -> None:
    """The UNet must map an unconditional image batch (1 or 3 channels, square) to a same-shape output."""
    cfg, where = info.unet_config, f"--model {info.source}: unet"
    if cfg.get("_class_name") != "UNet2DModel":
        raise Cifar5mError(
            f"{where} is a {cfg.get('_class_name')}; only unconditional pixel-space "
            "UNet2DModel pipelines (like google/ddpm-cifar10-32) are supported"
        )
    if cfg.get("num_class_embeds") or cfg.get("class_embed_type"):
        raise Cifar5mError(
            f"{where} is class-conditional (num_class_embeds/class_embed_type set); "
            "CIFAR-5m samples unconditionally and labels afterwards: use an unconditional model"
        )
    size = cfg.get("sample_size")
    square = isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1])
    channels, out_channels = cfg.get("in_channels", 3), cfg.get("out_channels", 3)
    if not square or channels not in (1, 3) or out_channels != channels:
        raise Cifar5mError(
            f"{where} makes {out_channels}-channel output from {channels}-channel input of sample_size {size}: "
            "need square images with 1 or 3 channels and out_channels == in_channels "
            "(learned-variance models, which output 2x channels, are not supported)"
        )


def check_scheduler_config(info: PipelineInfo) -> None:
    cfg, where = info.scheduler_config, f"--model {info.source}: scheduler"
    name = cfg.get("_class_name")
    if name not in BETA_SCHEDULERS:
        raise Cifar5mError(
            f"{where} is a {name}: the samplers need a DDPM-style beta schedule "
            f"(one of {', '.join(sorted(BETA_SCHEDULERS))} in scheduler/scheduler_config.json)"
        )
    if cfg.get("prediction_type", "epsilon") not in PREDICTION_TYPES:
        raise Cifar5mError(
            f"{where}: prediction_type {cfg.get('prediction_type')!r} is not one of {', '.join(PREDICTION_TYPES)}"
        )


def check_sampler(info: PipelineInfo, sampler: str, steps: int) -> None:
    """Refuse sampler settings known to give wrong or poor images with this model (DDIM paper, Song et al.
    2021, Table 1: DDPM with fixed_large variance at 50 steps has FID 32.7)."""
    cfg = info.scheduler_config
    train_steps = int(cfg.get("num_train_timesteps", 1000))
    if steps > train_steps:
        raise Cifar5mError(
            f"--steps {steps}: the model was trained with {train_steps} timesteps; use --steps <= {train_steps}"
        )
    if not PRESETS[sampler].ancestral:
        return
    variance = cfg.get("variance_type", "fixed_small")
    if variance not in ("fixed_small", "fixed_large"):
        raise Cifar5mError(
            f"--sampler ddpm: the scheduler's variance_type {variance!r} is not supported "
            "(fixed_small or fixed_large); use --sampler ddim or dpmpp"
        )
    if cfg.get("thresholding"):
        raise Cifar5mError(
            "--sampler ddpm: dynamic thresholding (scheduler thresholding=true) is not "
            "supported; use --sampler ddim or dpmpp"
        )
    if variance == "fixed_large" and steps < train_steps:
        raise Cifar5mError(
            f"--sampler ddpm --steps {steps}: this model's DDPM uses variance fixed_large, which is only right "
            f"with all {train_steps} steps (at 50 steps FID 32.7 against 3.2; DDIM paper, Table 1); use "
            f"--steps {train_steps}, or --sampler ddim (100 steps) or dpmpp (20 steps) for fewer"
        )


def load_unet(info: PipelineInfo):
    """The UNet2DModel with its weights, on the CPU, in eval mode."""
    from diffusers import UNet2DModel  # heavy: loaded only when this is used

    try:
        unet = UNet2DModel.from_pretrained(info.path, subfolder="unet", low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise Cifar5mError(f"--model {info.source}: cannot load unet weights from {info.path}/unet ({exc})") from None
    return unet.eval().requires_grad_(False)
