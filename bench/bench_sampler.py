"""Our sampling loop (cifar5m.sample.Sampler) against diffusers' DDPMPipeline, same UNet/scheduler/steps/batch.

    python bench/bench_sampler.py                      # CPU, small random UNet, DDPM over 50 steps
    python bench/bench_sampler.py --device cuda --compile --dtype bf16 --batch-size 256

Both sample a batch of ancestral DDPM images from random weights (speed does not depend on them). The
baseline is `DDPMPipeline(batch_size, num_inference_steps, output_type="np")`: fp32, one noise tensor
per batch. Ours draws per-image noise (cifar5m/noise.py), may run the UNet under autocast and compile,
and returns uint8. Prints images/s of each and the ratio ours / baseline (best of --repeats interleaved runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(channels: tuple[int, ...], size: int, train_steps: int, device: str):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = (
        UNet2DModel(
            sample_size=size,
            in_channels=3,
            out_channels=3,
            block_out_channels=channels,
            layers_per_block=1,
            down_block_types=("DownBlock2D",) * len(channels),
            up_block_types=("UpBlock2D",) * len(channels),
        )
        .eval()
        .requires_grad_(False)
    )
    scheduler = DDPMScheduler(num_train_timesteps=train_steps, variance_type="fixed_large", clip_sample=True)
    return unet.to(device), scheduler


def seconds(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_pair(first, second, repeats: int, device: str) -> tuple[float, float]:
    """Best seconds of each over `repeats` interleaved calls, after one warm-up call each.

    Interleaving and the minimum keep a shared machine's load bursts from favouring either side.
    """
    first(), second()
    times = [(seconds(first, device), seconds(second, device)) for _ in range(repeats)]
    return min(t[0] for t in times), min(t[1] for t in times)


def main() -> None:
    from diffusers import DDPMPipeline

    from cifar5m.sample import Sampler
    from shards import derive_seed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50, help="DDPM training = sampling steps")
    parser.add_argument("--channels", default="32,64", help="UNet block_out_channels")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    channels = tuple(int(c) for c in args.channels.split(","))
    unet, scheduler = build(channels, args.size, args.steps, args.device)
    params = sum(p.numel() for p in unet.parameters())
    pipe = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator(args.device).manual_seed(0)

    def baseline():
        pipe(batch_size=args.batch_size, num_inference_steps=args.steps, output_type="np", generator=gen)

    sampler = Sampler(unet, dict(scheduler.config), "ddpm", args.steps, args.device, args.dtype, args.compile)
    seeds = [derive_seed(0, "bench", i) for i in range(args.batch_size)]

    def ours():
        sampler.sample(seeds).cpu()

    t_base, t_ours = timed_pair(baseline, ours, args.repeats, args.device)
    b = args.batch_size
    print(
        f"UNet {channels} ({params / 1e6:.2f}M params) {args.size}x{args.size}, DDPM {args.steps} steps, "
        f"batch {b}, {args.device}, {torch.get_num_threads()} threads"
    )
    print(f"baseline diffusers.DDPMPipeline (fp32, output_type=np): {b / t_base:8.2f} images/s")
    print(
        f"ours cifar5m Sampler ({args.dtype}{', compiled' if args.compile else ''}, uint8):"
        f"{' ' * max(0, 14 - len(args.dtype) - 10 * args.compile)}{b / t_ours:8.2f} images/s"
    )
    print(f"ratio ours / baseline: {t_base / t_ours:.2f}x")


if __name__ == "__main__":
    main()
