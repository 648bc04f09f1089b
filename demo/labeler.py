"""The demo's labeler: timm's tiny `test_resnet` (one input channel, 10 classes), trained from scratch on
the real train digits by the toolkit's own trainer (`train.labeler.finetune`, the code path of
`python -m train finetune`: one trainer run, export with timm's save_for_hf, evaluation).

Saved in timm's own format (`config.json` + `model.safetensors`), so anything that loads timm models
loads it: `timm.create_model("local-dir:demo/models/digits-labeler", pretrained=True)`, and its config
records the preprocessing it was trained with: 8x8 uint8 digits resized to 32x32 (bilinear), scaled to
[0, 1], normalised with mean 0.5 and std 0.5. The same training from the command line (the demo also sets
where the data is held and how often and on how many train digits it evaluates, which change no weight):

    python -m demo real-digits --out out/real-digits
    python -m train finetune --data out/real-digits --model timm:test_resnet --image-size 32 \
        --optimizer adamw --lr 0.003 --weight-decay 0.05 --batch-size 64 --steps 1200 --warmup-steps 360 \
        --aug crop --crop-padding 1 --precision fp32 --device cpu --out out/digits-labeler
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifar5m import Labeler, create_labeler_model, read_labeler_info
from demo.config import LABELER_PRESET
from train import RunConfig


# The demo preset. test_resnet downsamples 32x: at 32x32 its last stage sees 1x1, at the native 8x8 its
# stem alone would. 1,200 steps of batch 64 are ~61 epochs of the 1,258 train digits; AdamW with a 30%
# warm-up then cosine, as the one-cycle schedule of the demo's first, hand-written labeler loop. `crop`
# with 1 px of padding shifts a digit by up to 1 px and never mirrors it: the diffusion model's digits are
# not all centred as the real ones, and a labeler that has seen small shifts is less confidently wrong
# about them. Measured with 1 CPU thread of the shared 2-core machine: 800 steps gave 99.63% on the 539
# held-out real digits (2 errors, 46 s); 1,200 steps 99.81% (1 error, 44-66 s), the shipped model
# (`python -m demo train-models --out demo/models --only labeler --overwrite`; its metrics.json).
def labeler_run_config(
    data: str | Path, out_dir: str | Path, steps: int = LABELER_PRESET["steps"], seed: int = 0, device: str = "cpu"
) -> RunConfig:
    """The trainer's config for the demo labeler on a real-digits dataset (demo.data.write_real_digits).

    The warm-up stays 30% of the steps; train error is scored on every train digit (1,258 <= 2,000)."""
    preset = {**LABELER_PRESET, "steps": steps, "warmup_steps": int(0.3 * steps)}
    return RunConfig(
        data=str(data), out_dir=str(out_dir), seed=seed, device=device, checkpoint_every_steps=steps, **preset
    )


def load_labeler(model_dir: str | Path, device: str = "cpu") -> Labeler:
    """The saved labeler as the generator applies it (`cifar5m generate --labeler local-dir:DIR`)."""
    info = read_labeler_info(f"local-dir:{Path(model_dir)}", None)
    return Labeler(create_labeler_model(info, info.num_classes), device)


def predict_proba(labeler: Labeler, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, classes) float32 for uint8 NHWC images."""
    out = [
        labeler(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size]))).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float32)
