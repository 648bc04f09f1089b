"""Measure a timm classifier on a dataset of ours: accuracy, per-class accuracy and calibration (ECE).

    model = load_classifier("local-dir:out/labeler")          # or hf-hub:ORG/NAME
    result = evaluate_classifier(model, "out/cifar10", "test", device=torch.device("cpu"))
    result.accuracy, result.per_class, result.ece, result.on  # on: "cifar10/test (10,000 images)"

Images are prepared as a labeler sees them when it labels: the stored uint8 image resized straight to
the model's input size (its config's interpolation, antialiased when shrinking), grey repeated to RGB,
scaled to [0, 1] and normalised with the config's mean and std. So the accuracy measured here is the
accuracy of the labels the model will write.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from train.data.datasets import cache_size, open_dataset, read_split
from train.errors import TrainError

# 15 equal-width confidence bins: the usual ECE (Guo et al. 2017, "On Calibration of Modern Neural Networks").
ECE_BINS = 15


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over confidence bins of (share of samples) x |accuracy - confidence|.

    Written out (a few lines) rather than adding torchmetrics as a dependency for one number.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    split: str
    count: int
    accuracy: float
    per_class: dict[str, float | None]  # None for a class with no sample in the split
    ece: float

    @property
    def on(self) -> str:
        return f"{self.dataset}/{self.split} ({self.count:,} images)"

    def to_dict(self) -> dict:
        return {**asdict(self), "on": self.on}


def load_classifier(spec: str) -> torch.nn.Module:
    """A timm model with its weights, from `local-dir:DIR` or `hf-hub:ORG/NAME`, in eval mode on the CPU."""
    import timm  # deferred: heavy (seconds)

    if not spec.startswith(("local-dir:", "hf-hub:")):
        raise TrainError(
            f"--model {spec}: give local-dir:DIR (a folder saved by timm, e.g. by `train finetune`) or hf-hub:ORG/NAME"
        )
    try:
        model = timm.create_model(spec, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - timm and the Hub raise many types; all mean "cannot load it"
        raise TrainError(
            f"--model {spec}: cannot load it ({type(exc).__name__}: {exc}); check the folder holds "
            "timm's config.json and model.safetensors, or the Hub id"
        ) from None
    return model.eval().requires_grad_(False)


class Preprocess:
    """uint8 NHWC batch -> the model's normalised float input, from its timm data config."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        import timm.data  # deferred: heavy (seconds)

        cfg = timm.data.resolve_model_data_config(model)
        self.channels, *size = cfg["input_size"]
        self.size = tuple(size)
        self.mode = cfg.get("interpolation", "bilinear")
        self.mode = self.mode if self.mode in ("bilinear", "bicubic", "nearest") else "bilinear"
        self.mean = torch.tensor(cfg["mean"], device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(cfg["std"], device=device).view(1, -1, 1, 1)

    def __call__(self, x_u8: torch.Tensor) -> torch.Tensor:
        x = x_u8.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != self.size:
            smooth = self.mode != "nearest"
            x = F.interpolate(
                x,
                size=self.size,
                mode=self.mode,
                align_corners=False if smooth else None,
                antialias=smooth and x.shape[2] > self.size[0],
            )
        return (x - self.mean) / self.std


def _check_classes(model: torch.nn.Module, class_names: list[str], location: str) -> None:
    if model.num_classes != len(class_names):
        raise TrainError(
            f"{location}: {len(class_names)} classes ({', '.join(class_names[:10])}), the model has "
            f"{model.num_classes} outputs; evaluate it on a dataset with its classes"
        )
    names = getattr(model, "pretrained_cfg", {}).get("label_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise TrainError(
            f"the model's label_names is {names!r}, not a list of class names; fix that field of its "
            "config.json or re-save it (`train finetune` writes it)"
        )
    if names and list(names) != list(class_names):
        raise TrainError(
            f"{location}: class names {list(class_names)[:10]} differ from the model's label_names "
            f"{list(names)[:10]}; the labels would not mean the same classes"
        )


@torch.no_grad()
def evaluate_classifier(
    model: torch.nn.Module,
    data: str,
    split: str = "test",
    device: torch.device | None = None,
    batch_size: int = 256,
    limit: int | None = None,
) -> EvalResult:
    """Accuracy, per-class accuracy and ECE of `model` on the first `limit` samples (all when None) of a split."""
    device = device or torch.device("cpu")
    ds = open_dataset(data)
    prep = Preprocess(model, device)
    images, labels = read_split(ds, split, cache_size(ds, prep.size[0]), limit, stream=False)
    names = ds.manifest.class_names
    _check_classes(model, names, ds.location)
    model = model.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    probs = []
    for start in range(0, len(labels), batch_size):
        x = torch.from_numpy(np.require(images[start : start + batch_size], requirements=["C", "W"])).to(device)
        with autocast:
            logits = model(prep(x))
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(names)))
    if not len(labels):
        raise TrainError(f"{ds.location}: split {split!r} is empty; nothing to evaluate")
    predicted = p.argmax(1)
    correct = predicted == labels
    per_class = {
        name: (float(correct[labels == c].mean()) if (labels == c).any() else None) for c, name in enumerate(names)
    }
    return EvalResult(
        ds.name,
        split,
        len(labels),
        float(correct.mean()),
        per_class,
        calibration_error(p.max(1), correct.astype(np.float64)),
    )
