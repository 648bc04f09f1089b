"""The demo's labeler: timm's tiny `test_resnet` (one input channel, 10 classes) trained on real digits.

Saved in timm's own format (`config.json` + `model.safetensors`), so anything that loads timm models
loads it: `timm.create_model("local-dir:demo/models/digits-labeler", pretrained=True)`, and
`timm.data.resolve_model_data_config(model)` gives its preprocessing: 8x8 uint8 digits resized to 32x32
(bilinear), scaled to [0, 1], normalised with mean 0.5 and std 0.5.

    python -m demo train-models --out demo/models
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


ARCHITECTURE = "test_resnet"
# test_resnet downsamples 32x: at 32x32 its last stage sees 1x1, at the native 8x8 its stem alone would.
DATA_CONFIG = {"input_size": (1, 32, 32), "interpolation": "bilinear", "crop_pct": 1.0,
               "mean": (0.5,), "std": (0.5,)}


@dataclass(frozen=True)
class LabelerConfig:
    """Training settings: 40 epochs of the 1,258 train digits, 99.8% on the 539 held-out ones; 22 s on two
    idle CPU cores, 45 s on one thread of a busy machine."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    max_shift_px: int = 1
    seed: int = 0


def build_labeler(num_classes: int = 10):
    import timm  # heavy: loaded only when this is used

    return timm.create_model(ARCHITECTURE, in_chans=1, num_classes=num_classes)


def preprocess(images: np.ndarray, data_config: dict) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW at the model's input size, as timm's eval transform does
    (bilinear resize, /255, (x - mean) / std); agrees with it to within PIL's uint8 rounding."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    size = tuple(data_config["input_size"][1:])
    if tuple(x.shape[2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(data_config["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def random_shift(images: np.ndarray, max_shift_px: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to `max_shift_px` pixels each way, filling with background (0).

    Why: the diffusion model's digits are not all centred exactly as the real ones; a labeler that has
    seen small shifts is less confidently wrong about them.
    """
    if max_shift_px == 0:
        return images
    pad = max_shift_px
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    h, w = images.shape[1:3]
    offsets = rng.integers(0, 2 * pad + 1, size=(len(images), 2))
    return np.stack([padded[i, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def train_labeler(images: np.ndarray, labels: np.ndarray, cfg: LabelerConfig, device: str = "cpu",
                  progress: bool = True):
    """Train with AdamW and a one-cycle schedule on shifted copies of the images; return the model."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_labeler(int(labels.max()) + 1).to(device)
    steps_per_epoch = -(-len(images) // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr,
                                                      total_steps=cfg.epochs * steps_per_epoch)
    targets = torch.from_numpy(labels.astype(np.int64))
    model.train()
    for _ in tqdm(range(cfg.epochs), desc="labeler", unit="epoch", disable=not progress):
        order = rng.permutation(len(images))
        shifted = random_shift(images, cfg.max_shift_px, rng)
        for first in range(0, len(order), cfg.batch_size):
            idx = order[first:first + cfg.batch_size]
            batch = preprocess(shifted[idx], DATA_CONFIG).to(device)
            loss = F.cross_entropy(model(batch), targets[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_schedule.step()
    return model.eval()


@torch.no_grad()
def predict_proba(model, images: np.ndarray, data_config: dict, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, classes) float32 for uint8 NHWC images."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.softmax(model(preprocess(images[i:i + batch_size], data_config).to(device)), dim=1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)


def save_labeler(model, out_dir: str | Path, label_names: list[str]) -> Path:
    """Save weights (safetensors) and config.json with the preprocessing, in timm's local-dir format."""
    from timm.models import save_for_hf  # heavy: loaded only when this is used

    out_dir = Path(out_dir)
    model_config = {"label_names": list(label_names),
                    # Replace the inherited ImageNet tag of test_resnet: these weights are ours.
                    "pretrained_cfg": {"tag": "digits_demo"}}
    save_for_hf(model, out_dir, model_config=model_config, safe_serialization=True,
                data_config=dict(DATA_CONFIG))
    return out_dir


def load_labeler(model_dir: str | Path):
    """The saved labeler with its weights, and its timm data config (input_size, mean, std, ...)."""
    import timm  # heavy: loaded only when this is used
    import timm.data

    model = timm.create_model(f"local-dir:{Path(model_dir)}", pretrained=True).eval()
    return model, timm.data.resolve_model_data_config(model)
