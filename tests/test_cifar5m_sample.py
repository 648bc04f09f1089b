"""The sampler: per-image noise, the DDPM step against diffusers, batch-size invariance, refused settings."""

from __future__ import annotations

import pytest
import torch

from cifar5m.errors import Cifar5mError
from cifar5m.models import PipelineInfo, check_sampler, check_scheduler_config, check_unet, read_pipeline
from cifar5m.noise import gaussian_noise, seed_words
from cifar5m.sample import Sampler, ddpm_step, make_scheduler
from shards import derive_seed

SEEDS = [derive_seed(0, "train", i) for i in range(16)]


def test_noise_is_pinned_so_datasets_stay_reproducible():
    # If these change, NOISE_SCHEME in cifar5m/config.py must change too (it is part of the dataset hash).
    z = gaussian_noise(seed_words([12345, 2**62 + 7], "cpu"), 0, (1, 2, 2)).flatten().tolist()
    assert z == pytest.approx([-0.55208, -0.91440, -1.65574, 0.24202, 0.50352, 1.29421, 0.81823, -1.74897], abs=1e-5)
    z = gaussian_noise(seed_words([12345], "cpu"), 1000, (3,)).flatten().tolist()
    assert z == pytest.approx([-1.45051, -1.03644, -0.69573], abs=1e-5)


def test_noise_depends_only_on_seed_and_step():
    words = seed_words(SEEDS, "cpu")
    full = gaussian_noise(words, 7, (3, 8, 8))
    part = gaussian_noise(seed_words(SEEDS[5:9][::-1], "cpu"), 7, (3, 8, 8))
    assert torch.equal(part, full[5:9].flip(0))  # any batch, any order: the same bits
    assert not torch.equal(gaussian_noise(words, 8, (3, 8, 8)), full)


def test_noise_is_standard_normal_and_uncorrelated():
    z = gaussian_noise(seed_words([derive_seed(1, "x", i) for i in range(48)], "cpu"), 3, (3, 32, 32))
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    kurtosis = ((z - z.mean()) ** 4).mean() / z.var() ** 2
    assert abs(kurtosis.item() - 3) < 0.05
    flat = z.flatten(1)
    corr = torch.corrcoef(flat) - torch.eye(len(flat))
    assert corr.abs().max().item() < 0.1  # 3072 values per image: |r| of independent images ~ 0.018
    steps = torch.stack([gaussian_noise(seed_words(SEEDS[:1], "cpu"), k, (3072,))[0] for k in range(4)])
    assert (torch.corrcoef(steps) - torch.eye(4)).abs().max().item() < 0.1


@pytest.mark.parametrize("variance_type,steps", [("fixed_large", 1000), ("fixed_small", 50)])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_ddpm_step_matches_diffusers(variance_type, steps, prediction_type):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(
        num_train_timesteps=1000, variance_type=variance_type, clip_sample=True, prediction_type=prediction_type
    )
    scheduler.set_timesteps(steps)
    gen = torch.Generator().manual_seed(0)
    x, eps = torch.randn(4, 3, 8, 8, generator=gen), torch.randn(4, 3, 8, 8, generator=gen)
    for t in [int(scheduler.timesteps[0]), int(scheduler.timesteps[steps // 2]), 0]:
        torch.manual_seed(1)  # DDPMScheduler.step draws its noise from the global generator
        expected = scheduler.step(eps, t, x).prev_sample
        torch.manual_seed(1)
        noise = torch.randn(4, 3, 8, 8)
        assert torch.equal(ddpm_step(scheduler, eps, t, x, noise if t > 0 else None), expected)


def _sampler(pipeline_dir, sampler="ddpm", steps=4):
    from cifar5m.models import load_unet

    info = read_pipeline(str(pipeline_dir), pipeline_dir)
    return Sampler(load_unet(info), info.scheduler_config, sampler, steps, "cpu")


def test_same_images_whatever_the_batch_size(tiny_pipeline):
    sampler = _sampler(tiny_pipeline)
    whole = sampler.sample(SEEDS)
    assert whole.dtype == torch.uint8 and whole.shape == (16, 32, 32, 3)
    assert torch.equal(sampler.sample(SEEDS), whole)  # same batch: byte-identical
    fours = torch.cat([sampler.sample(SEEDS[i : i + 4]) for i in range(0, 16, 4)])
    diff = (fours.int() - whole.int()).abs()
    assert diff.max().item() <= 1  # other batch sizes: equal up to float rounding
    assert (diff > 0).float().mean().item() < 0.01
    assert len({bytes(img.numpy()) for img in whole}) == 16  # every seed its own image


@pytest.mark.parametrize("sampler,steps", [("ddim", 3), ("dpmpp", 3)])
def test_deterministic_samplers_run(tiny_digits_pipeline, sampler, steps):
    images = _sampler(tiny_digits_pipeline, sampler, steps).sample(SEEDS[:4])
    assert images.shape == (4, 8, 8, 1) and images.dtype == torch.uint8
    assert torch.equal(_sampler(tiny_digits_pipeline, sampler, steps).sample(SEEDS[:4]), images)


def _info(unet=None, scheduler=None) -> PipelineInfo:
    unet_cfg = {"_class_name": "UNet2DModel", "sample_size": 32, "in_channels": 3, "out_channels": 3}
    sched_cfg = {
        "_class_name": "DDPMScheduler",
        "num_train_timesteps": 1000,
        "variance_type": "fixed_large",
        "prediction_type": "epsilon",
    }
    return PipelineInfo("some/model", "/nowhere", {**unet_cfg, **(unet or {})}, {**sched_cfg, **(scheduler or {})})


@pytest.mark.parametrize(
    "sampler,steps,scheduler,message",
    [
        ("ddpm", 50, {}, "only right with all 1000 steps"),
        ("ddim", 2000, {}, "use --steps <= 1000"),
        ("ddpm", 1000, {"variance_type": "learned_range"}, "variance_type 'learned_range' is not supported"),
        ("ddpm", 1000, {"thresholding": True}, "dynamic thresholding"),
    ],
)
def test_known_bad_sampler_settings_are_refused(sampler, steps, scheduler, message):
    with pytest.raises(Cifar5mError, match=message):
        check_sampler(_info(scheduler=scheduler), sampler, steps)


@pytest.mark.parametrize(
    "sampler,steps,scheduler",
    [
        ("ddpm", 1000, {}),
        ("ddpm", 100, {"variance_type": "fixed_small"}),
        ("ddim", 100, {}),
        ("dpmpp", 20, {}),
    ],
)
def test_good_sampler_settings_pass_and_give_the_steps_asked_for(sampler, steps, scheduler):
    info = _info(scheduler=scheduler)
    assert check_sampler(info, sampler, steps) is None  # accepted: no error
    timesteps = make_scheduler(info.scheduler_config, sampler, steps, torch.device("cpu")).timesteps.tolist()
    assert len(timesteps) == steps and timesteps == sorted(timesteps, reverse=True)
    assert timesteps[0] < 1000 and timesteps[-1] >= 0  # within the model's 1000 training timesteps


@pytest.mark.parametrize(
    "unet,message",
    [
        ({"out_channels": 6}, "learned-variance"),
        ({"in_channels": 4, "out_channels": 4}, "1 or 3 channels"),
        ({"sample_size": [32, 16]}, "square"),
        ({"num_class_embeds": 10}, "class-conditional"),
        ({"_class_name": "UNet2DConditionModel"}, "UNet2DModel"),
    ],
)
def test_models_that_do_not_make_image_batches_are_refused(unet, message):
    with pytest.raises(Cifar5mError, match=message):
        check_unet(_info(unet=unet))


@pytest.mark.parametrize(
    "scheduler,message",
    [
        ({"_class_name": "ScoreSdeVeScheduler"}, "DDPM-style beta schedule"),
        ({"_class_name": "EulerDiscreteScheduler"}, "DDPM-style beta schedule"),
        ({"prediction_type": "flow"}, "prediction_type"),
    ],
)
def test_schedulers_of_other_noise_processes_are_refused(scheduler, message):
    with pytest.raises(Cifar5mError, match=message):
        check_scheduler_config(_info(scheduler=scheduler))


def test_digits_shape_comes_from_the_unet(tiny_digits_pipeline):
    info = read_pipeline(str(tiny_digits_pipeline), tiny_digits_pipeline)
    assert info.image_shape == (1, 8, 8)
