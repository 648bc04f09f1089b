"""The demo's diffusion model: a small diffusers UNet trained with DDPM's objective on real 8x8 digits.

The same code path as CIFAR-5m's generator (UNet2DModel + DDPMScheduler, saved as a DDPMPipeline folder:
`model_index.json`, `unet/`, `scheduler/`), at a size that trains in minutes on two CPU cores.

    python -m demo train-models --out demo/models
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demo.config import DiffusionConfig


def build_unet(block_out_channels: tuple[int, ...] = (32, 64)):
    """An 8x8 one-channel UNet: one ResNet layer per block, no attention (0.65M params at (32, 64))."""
    from diffusers import UNet2DModel  # heavy: loaded only when this is used

    depth = len(block_out_channels)
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * depth,
        up_block_types=("UpBlock2D",) * depth,
        norm_num_groups=min(32, block_out_channels[0]),
    )


def build_scheduler():
    """DDPM's linear schedule (1e-4..0.02, 1000 steps), as google/ddpm-cifar10-32 uses.

    `fixed_small` variance rather than that checkpoint's `fixed_large`: ancestral sampling with fewer
    than 1000 steps is much worse with `fixed_large` (DDIM paper, Song et al. 2021, Table 1: FID 32.7 at 50 steps).
    """
    from diffusers import DDPMScheduler  # heavy: loaded only when this is used

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        variance_type="fixed_small",
        clip_sample=True,
    )


def images_to_model_space(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1], the range DDPM models are trained in."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)


def train_diffusion(images: np.ndarray, cfg: DiffusionConfig, device: str = "cpu", progress: bool = True):
    """Train a UNet to predict the noise added at a uniform random timestep; return (EMA UNet, scheduler).

    Batches, noise and timesteps come from one CPU generator seeded by `cfg.seed`, so a run is
    repeatable and draws the same numbers on any device.
    """
    torch.manual_seed(cfg.seed)
    unet, scheduler = build_unet(cfg.block_out_channels).to(device), build_scheduler()
    ema = copy.deepcopy(unet).requires_grad_(False)
    data = images_to_model_space(images)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    bar = tqdm(range(cfg.steps), desc="diffusion", unit="step", disable=not progress)
    for step in bar:
        x0 = data[torch.randint(0, len(data), (cfg.batch_size,), generator=gen)]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=gen)
        x0, noise, t = x0.to(device), noise.to(device), t.to(device)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_schedule.step()
        # Warm-up of the EMA decay, so a short run is not dominated by its random start.
        _ema_update(ema, unet, min(cfg.ema_decay, (1 + step) / (10 + step)))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return ema, scheduler


def save_pipeline(unet, scheduler, out_dir: str | Path) -> Path:
    """Save as a diffusers DDPMPipeline folder (model_index.json, unet/, scheduler/)."""
    from diffusers import DDPMPipeline  # heavy: loaded only when this is used

    out_dir = Path(out_dir)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(out_dir)
    return out_dir


def load_pipeline(model_dir: str | Path):
    """The UNet and the DDPM scheduler of a saved pipeline folder."""
    from diffusers import DDPMScheduler, UNet2DModel  # heavy: loaded only when this is used

    # low_cpu_mem_usage needs `accelerate`, which the toolkit does not require; 2.6 MB needs no care.
    unet = UNet2DModel.from_pretrained(model_dir, subfolder="unet", low_cpu_mem_usage=False).eval()
    scheduler = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler")
    return unet, scheduler


@torch.no_grad()
def sample_digits(unet, scheduler, count: int, steps: int = 20, seed: int = 0, batch_size: int = 500) -> np.ndarray:
    """Sample `count` digits with DPM-Solver++ (`steps` steps) and quantise them to uint8 NHWC.

    Used to measure the model's quality; the dataset generator has its own sampler with per-image seeds.
    """
    from diffusers import DDPMPipeline, DPMSolverMultistepScheduler  # heavy: only when used

    solver = DPMSolverMultistepScheduler.from_config(scheduler.config)
    pipe = DDPMPipeline(unet=unet.eval(), scheduler=solver)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(seed)
    chunks = []
    for first in range(0, count, batch_size):
        n = min(batch_size, count - first)
        out = pipe(batch_size=n, num_inference_steps=steps, generator=gen, output_type="np").images
        chunks.append(np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8))
    return np.concatenate(chunks).reshape(count, 8, 8, 1)
