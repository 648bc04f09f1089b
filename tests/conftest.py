"""Shared fixtures: a tiny random diffusers pipeline folder and a tiny timm labeler saved as local-dir.

Both are built in code (no downloads) and cached per test session. The builders are plain functions so
tests can make variants (1-channel 8x8 images, other heads, other schedulers).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def make_tiny_pipeline(folder: Path, channels: int = 3, size: int = 32, train_steps: int = 4,
                       variance_type: str = "fixed_large", seed: int = 0, **unet_kwargs) -> Path:
    """A random UNet2DModel (block_out_channels (4, 8), ~11K parameters) + DDPMScheduler pipeline folder.

    Few training timesteps keep DDPM's all-steps sampling cheap (a fixed_large DDPM must use all of them).
    """
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(4, 8),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, **unet_kwargs)
    scheduler = DDPMScheduler(num_train_timesteps=train_steps, beta_start=0.02, beta_end=0.5,
                              variance_type=variance_type, clip_sample=True)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return Path(folder)


def make_tiny_labeler(folder: Path, num_classes: int = 10, in_chans: int = 3, input_size: int = 24,
                      label_names: list[str] | None = None, seed: int = 0, image_shape=(32, 32, 3),
                      **config) -> Path:
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
    data_config = {"input_size": (in_chans, input_size, input_size), "interpolation": "bilinear",
                   "crop_pct": 1.0, "mean": (0.5,) * in_chans, "std": (0.5,) * in_chans}
    model.pretrained_cfg = {**model.pretrained_cfg, **data_config}
    with torch.no_grad():
        images = torch.randint(0, 256, (256, *image_shape), dtype=torch.uint8)
        features = model.forward_head(model.forward_features(Labeler(model, "cpu").preprocess(images)),
                                      pre_logits=True)
        weight = torch.randn(num_classes, features.shape[1]) * 3 / features.shape[1] ** 0.5 / (features.std(0) + 1e-6)
        model.get_classifier().weight.copy_(weight)
        model.get_classifier().bias.copy_(-(weight @ features.mean(0)))
    model_config = dict(config)
    if label_names:
        model_config["label_names"] = list(label_names)
    save_for_hf(model, folder, model_config=model_config, safe_serialization=True)  # data config: pretrained_cfg
    return Path(folder)


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory) -> Path:
    """The toolkit's user cache directory (decoded arrays, downloads) in a session temp folder, so tests
    never write under ~/.cache; subprocesses inherit it."""
    from shards.cachedir import CACHE_ENV

    root = tmp_path_factory.mktemp("user-cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    yield root
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: byte comparisons across runs need the same float reductions,
    and tiny models on 2 shared cores run faster without thread oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """3x32x32 images, DDPM fixed_large with 4 training timesteps."""
    return make_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-ddpm")


@pytest.fixture(scope="session")
def tiny_labeler(tmp_path_factory) -> Path:
    """10-way test_resnet reading 3x24x24."""
    return make_tiny_labeler(tmp_path_factory.mktemp("models") / "tiny-labeler")


@pytest.fixture(scope="session")
def tiny_digits_pipeline(tmp_path_factory) -> Path:
    """1x8x8 images, like the demo's digits model."""
    return make_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-digits", channels=1, size=8)


@pytest.fixture(scope="session")
def tiny_digits_labeler(tmp_path_factory) -> Path:
    """10-way, 1-channel input at 16x16, with digit label names."""
    return make_tiny_labeler(tmp_path_factory.mktemp("models") / "tiny-digits-labeler", in_chans=1,
                             input_size=16, label_names=[str(d) for d in range(10)], image_shape=(8, 8, 1))


@pytest.fixture(scope="session", autouse=True)
def no_local_path_in_any_manifest_or_card(tmp_path_factory):
    """Once every test of the session ran: no manifest.json, nor the card (README.md) beside it, that the toolkit
    wrote in any test (a dataset folder with the writer's `.shards/created.json`; not the hostile manifests
    tests forge) holds the session's temporary root, the absolute local path every dataset and model here lies
    under (a published dataset must not leak the author's file system, and the same inputs elsewhere are the same)."""
    yield
    root = tmp_path_factory.getbasetemp()
    prefixes = {str(root), str(root.resolve())}
    written = [p for m in root.rglob("manifest.json") if (m.parent / ".shards" / "created.json").is_file()
               for p in (m, m.parent / "README.md") if p.is_file()]
    leaks = [str(p.relative_to(root)) for p in written if any(x in p.read_text(errors="replace") for x in prefixes)]
    assert not leaks, f"absolute local paths in {', '.join(leaks[:5])}"
