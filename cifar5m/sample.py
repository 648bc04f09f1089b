"""Our batched sampling loop over a diffusers UNet2DModel and scheduler: image seeds -> uint8 images.

    sampler = Sampler(unet, pipeline_info.scheduler_config, "dpmpp", steps=20, device="cuda", dtype="bf16")
    images = sampler.sample(seeds)   # uint8 (B, H, W, C) on the device, exactly as they will be stored

Why not `DDPMPipeline`: it draws one noise tensor per batch (so an image depends on its batch), keeps
everything in the UNet's dtype (fp16 weights would also cast the scheduler arithmetic) and ends in PIL.
Here the UNet runs under autocast (bf16/fp16) in channels_last, optionally compiled, while the scheduler
arithmetic stays in fp32; every image draws its own noise from its seed (noise.py); the uint8
conversion happens on the device. DDPM's ancestral step is written out (`ddpm_step`) because diffusers'
`DDPMScheduler.step` cannot take given noise; it repeats that method's arithmetic line for line
(tests/test_cifar5m_sample.py checks it against diffusers).
Measured on an H200 (bench/gpu_sampler.py, CIFAR-10 DDPM UNet, batch 256, 50 steps): 4.4x DDPMPipeline
with bf16 + compile, 1.04x in plain fp32 (the loop itself costs nothing extra).
`compile_mode` passes torch.compile's mode: "reduce-overhead" replays each UNet call as a CUDA graph
(pytorch.org/docs/stable/generated/torch.compile.html), "max-autotune" also searches kernels; both are
measured by bench/gpu_sampler.py --compile-modes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cifar5m.config import PRESETS
from cifar5m.noise import gaussian_noise, seed_words

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# torch.compile's modes (cifar5m.config.COMPILE_MODES) that capture CUDA graphs: a replay reuses the
# previous replay's output buffers.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def resolve_dtype(dtype: str, device_type: str) -> str:
    """`auto` is bf16 on CUDA (the UNet is compute-bound there) and fp32 elsewhere."""
    if dtype != "auto":
        return dtype
    return "bf16" if device_type == "cuda" else "fp32"


def make_scheduler(scheduler_config: dict, sampler: str, steps: int, device: torch.device):
    """A fresh scheduler for one batch (multistep solvers keep per-run state) with its timesteps set."""
    import diffusers  # heavy: loaded only when this is used

    preset = PRESETS[sampler]
    cls = getattr(diffusers, preset.scheduler_class)
    scheduler = cls.from_config(scheduler_config, **dict(preset.scheduler_kwargs))
    if preset.ancestral or sampler == "ddim":
        # DDPM and DDIM index their CPU alphas with the timestep: keep the timesteps on the CPU too.
        scheduler.set_timesteps(steps)
    else:
        scheduler.set_timesteps(steps, device=device)
    return scheduler


def ddpm_step(
    scheduler, model_output: torch.Tensor, t: int, sample: torch.Tensor, noise: torch.Tensor | None
) -> torch.Tensor:
    """x_t -> x_{t-1}: Ho et al. 2020 eq. 7 posterior mean plus sigma_t * noise (eq. 6, sigma_t^2 = beta_t
    for fixed_large, the posterior variance for fixed_small). The same arithmetic as diffusers'
    DDPMScheduler.step, with the noise given instead of drawn. `noise` is ignored at t = 0."""
    cfg = scheduler.config
    prev_t = scheduler.previous_timestep(t)
    alpha_prod_t = scheduler.alphas_cumprod[t]
    alpha_prod_t_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.one
    beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev
    current_beta_t = 1 - current_alpha_t
    # 1. predicted x_0 (eq. 15)
    if cfg.prediction_type == "epsilon":
        x0 = (sample - beta_prod_t**0.5 * model_output) / alpha_prod_t**0.5
    elif cfg.prediction_type == "sample":
        x0 = model_output
    else:  # v_prediction
        x0 = alpha_prod_t**0.5 * sample - beta_prod_t**0.5 * model_output
    if cfg.clip_sample:
        x0 = x0.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
    # 2. posterior mean mu_t(x_t, x_0) (eq. 7)
    x0_coeff = (alpha_prod_t_prev**0.5 * current_beta_t) / beta_prod_t
    xt_coeff = current_alpha_t**0.5 * beta_prod_t_prev / beta_prod_t
    prev = x0_coeff * x0 + xt_coeff * sample
    if t == 0:
        return prev
    # 3. add sigma_t * z
    if cfg.variance_type == "fixed_large":
        variance = current_beta_t
    else:
        variance = torch.clamp(beta_prod_t_prev / beta_prod_t * current_beta_t, min=1e-20)
    return prev + variance**0.5 * noise


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] NCHW float -> uint8 NHWC, rounded as DDPMPipeline's numpy output would be."""
    x = (x / 2 + 0.5).clamp(0, 1) * 255
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class Sampler:
    """Holds the UNet on its device and turns a list of image seeds into uint8 images."""

    def __init__(
        self,
        unet,
        scheduler_config: dict,
        sampler: str,
        steps: int,
        device: str | torch.device,
        dtype: str = "fp32",
        compile: bool = False,
        compile_mode: str = "default",
    ):
        self.device = torch.device(device)
        self.sampler, self.steps = sampler, steps
        self.scheduler_config = dict(scheduler_config)
        self.autocast_dtype = TORCH_DTYPES[dtype]
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        self.image_shape = (cfg.in_channels, size, size)
        self.channels_last = self.device.type == "cuda"
        unet = unet.to(self.device).eval().requires_grad_(False)
        if self.channels_last:
            unet = unet.to(memory_format=torch.channels_last)
        self.unet = torch.compile(unet, mode=None if compile_mode == "default" else compile_mode) if compile else unet
        self.cuda_graphs = compile and compile_mode in CUDA_GRAPH_MODES and self.device.type == "cuda"

    def _predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One UNet evaluation in the compute dtype; the result back in fp32 for the scheduler."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        timestep = t.to(self.device).expand(len(x))  # a tensor: a compiled UNet is not re-traced per t
        enabled = self.autocast_dtype != torch.float32
        if self.cuda_graphs:  # a new step: the previous graph replay's outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled):
            out = self.unet(x, timestep).sample
        # under CUDA graphs always a copy out of the graph's static buffer (.float() keeps an fp32 one)
        return out.to(torch.float32, copy=self.cuda_graphs)

    @torch.inference_mode()
    def sample(self, seeds: Sequence[int]) -> torch.Tensor:
        """uint8 (B, H, W, C) images on the device, one per image seed."""
        scheduler = make_scheduler(self.scheduler_config, self.sampler, self.steps, self.device)
        words = seed_words(seeds, self.device)
        # 1. x_T: each image's own noise (noise step 0), scaled as the scheduler starts
        x = gaussian_noise(words, 0, self.image_shape) * scheduler.init_noise_sigma
        ancestral = PRESETS[self.sampler].ancestral
        # one copy up front: a per-step host-to-device copy would stall the host behind the GPU
        device_timesteps = scheduler.timesteps.to(self.device)
        for i, t in enumerate(scheduler.timesteps):
            # 2. predict the noise (or x_0 / v) at timestep t
            model_output = self._predict(scheduler.scale_model_input(x, t), device_timesteps[i])
            # 3. step to the previous timestep in fp32; ancestral steps take fresh per-image noise
            if ancestral:
                t_int = int(t)
                noise = gaussian_noise(words, i + 1, self.image_shape) if t_int > 0 else None
                x = ddpm_step(scheduler, model_output, t_int, x, noise)
            else:
                x = scheduler.step(model_output, t, x).prev_sample
        return to_uint8(x)
