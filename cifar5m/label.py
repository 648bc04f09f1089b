"""The labeler: a timm classifier that maps stored uint8 images to class probabilities.

    --labeler hf-hub:ORG/NAME                     a timm model on the Hugging Face Hub
    --labeler local-dir:/path/to/folder           a folder saved by timm (config.json + model.safetensors)
    --labeler resnet18 --labeler-checkpoint F     a timm architecture plus a checkpoint file

Preprocessing comes from the model's own timm data config: the image is resized (bilinear/bicubic as
the config says) from its stored size straight to the model's input size, channels adapted (grey ->
RGB by repetition, RGB -> grey by ITU-R 601 luma), scaled to [0, 1] and normalised with its mean/std.
The config's crop_pct is not applied: a generated image is the whole object, and cropping a 32x32
image would cut it. All of this runs batched on the sampling device.

`read_labeler_info` reads only the config (class names, head size) so a run can be planned and checked
before any weights load; `Labeler` loads the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cifar5m.errors import Cifar5mError
from shards.errors import ShardsError
from shards.identity import FileRecord, InputIdentity, file_record, identity_of, portable_path
from shards.jsonio import read_json_object

LUMA = (0.299, 0.587, 0.114)
# The checkpoint suffixes timm's local-dir loader looks for (timm/models/_hub.py, _EXT_PRIORITY).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pth.tar", ".bin")
# What `train eval --record` / `train finetune` write into a labeler's config.json after measuring it.
MEASUREMENTS = ("label_accuracy", "label_accuracy_on", "label_ece", "label_per_class_accuracy")
INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


@dataclass(frozen=True)
class LabelerInfo:
    """What the labeler's config says, read without loading weights."""

    spec: str  # as given; local-dir paths made absolute
    checkpoint: str | None
    num_classes: int | None
    label_names: tuple[str, ...] | None
    accuracy_note: str | None  # "label_accuracy" (and "label_accuracy_on") from its config, if recorded
    weights: InputIdentity | None = None  # what its weights (and settings) are: set by read_labeler_info

    @property
    def name(self) -> str:
        """How the dataset records the labeler: `hf-hub:ORG/NAME`, `local-dir:FOLDER` with the folder's own
        name, or the timm name (never a local path)."""
        source, sep, ident = self.spec.partition(":")
        return f"local-dir:{portable_path(ident)}" if sep and source == "local-dir" else self.spec


def read_labeler_info(spec: str, checkpoint: str | None) -> LabelerInfo:
    """Check the labeler spec and read its config.json (downloading only that file for hf-hub:)."""
    source, sep, ident = spec.partition(":")
    if sep and source in ("hf-hub", "local-dir"):
        if checkpoint:
            raise Cifar5mError(
                f"--labeler-checkpoint {checkpoint}: only for a plain timm name; {spec} carries its own weights"
            )
        if source == "local-dir":
            folder = Path(ident).expanduser().resolve()
            if not (folder / "config.json").is_file():
                raise Cifar5mError(
                    f"--labeler {spec}: {folder}/config.json not found; a local-dir: labeler is "
                    "a folder saved by timm (config.json + model.safetensors)"
                )
            spec, config = f"local-dir:{folder}", _read_config(folder / "config.json")
            weights = _weights_identity(folder, folder.name, config, spec)
        else:
            config_file = _hub_config(ident)
            config = _read_config(config_file)
            weights = _hub_weights_identity(ident, config_file, config)
        return dataclasses.replace(_info_from_config(spec, None, config), weights=weights)
    if "/" in spec or ":" in spec:
        raise Cifar5mError(
            f"--labeler {spec}: write hf-hub:{spec} for a Hub model, local-dir:{spec} for a "
            "folder, or a plain timm name with --labeler-checkpoint"
        )
    if not checkpoint:
        raise Cifar5mError(
            f"--labeler {spec}: a plain timm name needs --labeler-checkpoint FILE with its "
            "10-way weights (or use hf-hub:ORG/NAME / local-dir:/path)"
        )
    if not Path(checkpoint).is_file():
        raise Cifar5mError(f"--labeler-checkpoint {checkpoint}: no such file")
    path = Path(checkpoint).resolve()
    return LabelerInfo(spec, str(path), None, None, None, _identify(path.name, path.parent, [path.name], spec))


def _identify(
    name: str, folder: Path, files: list[str], spec: str, revision: str | None = None, config: dict | None = None
) -> InputIdentity:
    try:
        records = [file_record(folder, f) for f in files]
    except ShardsError as exc:
        raise Cifar5mError(f"--labeler {spec}: {exc}") from None
    return identity_of(name, records + ([_settings_record(config)] if config is not None else []), revision)


def _settings_record(config: dict) -> FileRecord:
    """config.json as its settings (architecture, head, preprocessing): the measurements `train eval
    --record` writes into it later (train/labeler/finetune.py) do not change the labels, so they are left out."""
    settings = {k: v for k, v in config.items() if k not in MEASUREMENTS}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return FileRecord("config.json (settings)", len(text), hashlib.sha256(text).hexdigest())


def _weights_identity(folder: Path, name: str, config: dict, spec: str) -> InputIdentity:
    """Every checkpoint file timm's local-dir loader may pick (its _EXT_PRIORITY suffixes) and the settings."""
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise Cifar5mError(
            f"--labeler {spec}: {folder} holds no weights ({', '.join(WEIGHT_SUFFIXES)} file); "
            "a local-dir: labeler is a folder saved by timm (config.json + model.safetensors)"
        )
    return _identify(f"local-dir:{name}", folder, files, spec, config=config)


def _hub_weights_identity(repo_id: str, config_file: Path, config: dict) -> InputIdentity:
    """The weights timm loads for hf-hub: (model.safetensors, else pytorch_model.bin), at the revision the
    config came from (hf_hub_download returns the cache's `snapshots/<commit>/` path)."""
    from huggingface_hub import hf_hub_download  # heavy: loaded only when this is used
    from huggingface_hub.errors import EntryNotFoundError

    revision = config_file.parent.name
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision))
        except EntryNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - offline, auth, network: all end the same way
            raise Cifar5mError(
                f"--labeler hf-hub:{repo_id}: cannot get its weights {filename} to identify them "
                f"({type(exc).__name__}); check the network and re-run"
            ) from None
        return _identify(f"hf-hub:{repo_id}", path.parent, [filename], f"hf-hub:{repo_id}", revision, config)
    raise Cifar5mError(f"--labeler hf-hub:{repo_id}: holds neither model.safetensors nor pytorch_model.bin")


def _hub_config(repo_id: str) -> Path:
    from huggingface_hub import hf_hub_download  # heavy: loaded only when this is used

    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except Exception as exc:  # noqa: BLE001 - offline, 404, auth, bad id: all end the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Cifar5mError(
            f"--labeler hf-hub:{repo_id}: cannot get it from the Hugging Face Hub ({type(exc).__name__}: "
            f"{reason}). Without network, download it where there is some (`hf download {repo_id} "
            f"--local-dir DIR`), copy DIR here and pass --labeler local-dir:DIR"
        ) from None


def _read_config(path: Path) -> dict:
    return read_json_object(
        path,
        fix="re-download or re-save the labeler",
        expected="an object of settings (timm writes one with architecture and num_classes)",
    )


# What each config.json field read here must hold (timm's and `train finetune`'s), checked before use.
_FIELD_RULES = {
    "label_names": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of class names"),
    "num_classes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "label_accuracy": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
        "a number in [0, 1]",
    ),
    "label_accuracy_on": (lambda v: isinstance(v, str), "a text"),
}


def _config_field(spec: str, config: dict, pretrained: dict, key: str, default=None):
    """config[key], else pretrained_cfg[key], else default; a value of the wrong type is one clear line."""
    value = config.get(key)
    value = pretrained.get(key, default) if value is None else value
    ok, expected = _FIELD_RULES[key]
    if value is not None and not ok(value):
        raise Cifar5mError(
            f"--labeler {spec}: config.json's {key} is {value!r}, not {expected}; fix that field "
            "or re-save the labeler (`train finetune` writes it)"
        )
    return value


def _info_from_config(spec: str, checkpoint: str | None, config: dict) -> LabelerInfo:
    pretrained = config.get("pretrained_cfg", {})
    if not isinstance(pretrained, dict):
        raise Cifar5mError(
            f"--labeler {spec}: config.json's pretrained_cfg is {pretrained!r}, not an object of "
            "settings; fix that field or re-save the labeler (`train finetune` writes it)"
        )
    names = _config_field(spec, config, pretrained, "label_names")
    num_classes = _config_field(spec, config, pretrained, "num_classes")
    accuracy = _config_field(spec, config, pretrained, "label_accuracy")
    note = None
    if accuracy is not None:
        on = _config_field(spec, config, pretrained, "label_accuracy_on", "its test set")
        note = f"{float(accuracy):.2%} on {on}"
    return LabelerInfo(spec, checkpoint, num_classes, tuple(names) if names else None, note)


def check_head(info_or_count, class_names: tuple[str, ...], spec: str) -> None:
    """The labeler's head must have one output per class name."""
    count = info_or_count.num_classes if isinstance(info_or_count, LabelerInfo) else info_or_count
    if count is not None and count != len(class_names):
        raise Cifar5mError(
            f"--labeler {spec}: its head has {count} outputs but the dataset has {len(class_names)} classes "
            f"({', '.join(class_names)}); use a labeler fine-tuned for these classes or give "
            f"--class-names with {count} names"
        )


def create_labeler_model(info: LabelerInfo, num_classes: int):
    """The timm model with its weights, on the CPU, in eval mode."""
    import timm  # heavy: loaded only when this is used

    try:
        if info.checkpoint:
            model = timm.create_model(
                info.spec, pretrained=False, num_classes=num_classes, checkpoint_path=info.checkpoint
            )
        else:
            model = timm.create_model(info.spec, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - timm raises RuntimeError/OSError/KeyError for bad models
        hint = (
            "check the name against timm.list_models() and that the checkpoint holds that architecture "
            f"with a {num_classes}-way head"
            if info.checkpoint
            else "check the folder or Hub id"
        )
        raise Cifar5mError(f"--labeler {info.spec}: cannot load ({type(exc).__name__}: {exc}); {hint}") from None
    return model.eval().requires_grad_(False)


class Labeler:
    """uint8 NHWC images on the device -> float32 class probabilities (B, classes)."""

    def __init__(self, model, device: str | torch.device, dtype: torch.dtype = torch.float32):
        import timm.data  # heavy: loaded only when this is used

        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.num_classes = int(model.num_classes)
        cfg = timm.data.resolve_model_data_config(model)
        self.input_channels, *size = cfg["input_size"]
        self.input_size = tuple(size)
        self.interpolation = INTERPOLATIONS.get(cfg.get("interpolation", "bilinear"), "bilinear")
        channels = self.input_channels
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.autocast_dtype = dtype

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, C) -> normalised float (B, C', H', W') at the model's input size."""
        x = images.to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1 and self.input_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and self.input_channels == 1:
            x = (x * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if tuple(x.shape[2:]) != self.input_size:
            smooth = self.interpolation != "nearest"
            downscale = x.shape[2] > self.input_size[0]
            x = F.interpolate(
                x,
                size=self.input_size,
                mode=self.interpolation,
                align_corners=False if smooth else None,
                antialias=smooth and downscale,
            )
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        enabled = self.autocast_dtype != torch.float32
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled):
            logits = self.model(x)
        return torch.softmax(logits.float(), dim=1)
