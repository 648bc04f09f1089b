"""Tiny models built in code (no downloads): a random diffusers pipeline folder and a timm labeler saved as
local-dir. Plain functions, so tests can make variants (1-channel 8x8 images, other heads, other
schedulers); conftest.py builds the shared ones once per session.
"""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_pipeline(
    folder: Path,
    channels: int = 3,
    size: int = 32,
    train_steps: int = 4,
    variance_type: str = "fixed_large",
    seed: int = 0,
    **unet_kwargs,
) -> Path:
    """A random UNet2DModel (block_out_channels (4, 8), ~11K parameters) + DDPMScheduler pipeline folder.

    Few training timesteps keep DDPM's all-steps sampling cheap (a fixed_large DDPM must use all of them).
    """
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(4, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        **unet_kwargs,
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=train_steps, beta_start=0.02, beta_end=0.5, variance_type=variance_type, clip_sample=True
    )
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return Path(folder)


def make_tiny_labeler(
    folder: Path,
    num_classes: int = 10,
    in_chans: int = 3,
    input_size: int = 24,
    label_names: list[str] | None = None,
    seed: int = 0,
    image_shape=(32, 32, 3),
    **config,
) -> Path:
    """timm's `test_resnet` with a random `num_classes` head, saved in timm's local-dir format.

    Its data config asks for `input_size` pixels, so labelling always resizes from the stored size.
    A random network maps every input to nearly the same features, so one class would win everywhere;
    the head is calibrated on random uint8 images of `image_shape` (centred, whitened features times a
    random projection) so that labels vary with the image and relabelling tests mean something.
    """
    import timm
    from timm.models import save_for_hf

    from cifar5m.label import Labeler

    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", num_classes=num_classes, in_chans=in_chans).eval()
    data_config = {
        "input_size": (in_chans, input_size, input_size),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "mean": (0.5,) * in_chans,
        "std": (0.5,) * in_chans,
    }
    model.pretrained_cfg = {**model.pretrained_cfg, **data_config}
    with torch.no_grad():
        images = torch.randint(0, 256, (256, *image_shape), dtype=torch.uint8)
        features = model.forward_head(model.forward_features(Labeler(model, "cpu").preprocess(images)), pre_logits=True)
        weight = torch.randn(num_classes, features.shape[1]) * 3 / features.shape[1] ** 0.5 / (features.std(0) + 1e-6)
        model.get_classifier().weight.copy_(weight)
        model.get_classifier().bias.copy_(-(weight @ features.mean(0)))
    model_config = dict(config)
    if label_names:
        model_config["label_names"] = list(label_names)
    save_for_hf(model, folder, model_config=model_config, safe_serialization=True)  # data config: pretrained_cfg
    return Path(folder)
