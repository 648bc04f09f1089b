"""GPU benchmark of the CIFAR-10 DDPM UNet and our sampling loop (bf16 + torch.compile); ~3-4 min on an H200.

    python bench/gpu_sampler.py               # figures for bench/RESULTS.md
    python bench/gpu_sampler.py --smoke       # tiny sizes on the CPU: checks that the script runs
    python bench/gpu_sampler.py --parts unet,presets --batches 1024,4096 --compile-modes default,reduce-overhead \
        --presets dpmpp:20 --json out.json    # what bench/gpu_figures.py runs: CUDA graphs vs plain compile

Self-contained (the GPU machine has no internet): builds the architecture of `google/ddpm-cifar10-32`
(UNet2DModel, block_out_channels (128, 256, 256, 256), 2 layers per block, attention at 16x16; 35,746,307
parameters) with random weights, which cost the same to run as the trained ones. Reports:
1. UNet evaluations/s (= image-steps/s) at batches 256/1024/4096, eager and compiled in each of
   --compile-modes (our Sampler's `compile_mode`; reduce-overhead = CUDA graphs), bf16 autocast +
   channels_last, and the fraction of the bf16 peak (790 TFLOP/s measured on an H200) at 12.4 GFLOP per
   image per step (torch.utils.flop_counter.FlopCounterMode on google/ddpm-cifar10-32's UNet: 12.1);
2. images/s of our Sampler for each preset at batch 1024 and the projected hours for 6M images;
3. our loop vs diffusers.DDPMPipeline (fp32, its default) on the same UNet/scheduler/steps/batch;
4. determinism: the same seeds twice (bytes), and one batch vs four (rounding only).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shards.jsonio import write_json_atomic  # noqa: E402  (the repository root is on sys.path from here)

GFLOP_PER_IMAGE_STEP = 12.4  # one UNet forward at 32x32: 6.2 GMAC (torch's FlopCounterMode says 12.1)
PEAK_TFLOPS = 790.0  # bf16 dense matmul measured on an H200 (8192^3, random data)
IMAGES = 6_002_688  # CIFAR-5m's size
RESULTS: dict[str, dict] = {}  # written to --json after every figure
JSON_PATH: list[str] = []  # --json, if given


def build_unet(smoke: bool):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    if smoke:
        return UNet2DModel(
            sample_size=32,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        )
    return UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(128, 256, 256, 256),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        norm_eps=1e-6,
    )


def ddpm_scheduler_config() -> dict:
    from diffusers import DDPMScheduler

    return dict(
        DDPMScheduler(
            num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, variance_type="fixed_large", clip_sample=True
        ).config
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_seconds(fn, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def unet_throughput(sampler, batches, device, repeats: int, label: str) -> None:
    t = torch.tensor(500)
    out = RESULTS.setdefault("unet", {})
    for batch in batches:
        x = torch.randn(batch, *sampler.image_shape, device=device)
        start = time.perf_counter()
        sampler._predict(x, t)  # warm-up (and compilation for this shape)
        sync(device)
        warm = time.perf_counter() - start
        seconds = best_seconds(functools.partial(sampler._predict, x, t), device, repeats)
        evals = batch / seconds
        tflops = evals * GFLOP_PER_IMAGE_STEP / 1e3
        out[f"{label}, batch {batch}"] = dict(
            evals_per_s=evals,
            tflops=tflops,
            peak_fraction=tflops / PEAK_TFLOPS,
            first_call_s=warm,
            batch=batch,
            variant=label,
        )
        write_json()
        print(
            f"  {label:22} batch {batch:5}: {evals:9,.0f} UNet evals/s  {tflops:6.1f} TFLOP/s  "
            f"{tflops / PEAK_TFLOPS:6.1%} of peak  (first call {warm:5.1f} s)",
            flush=True,
        )


def sampler_throughput(unet, device, dtype, batch: int, presets, compile_mode: str | None, ready=None) -> dict:
    """images/s of our Sampler per preset; compile_mode None: eager. `ready`: a Sampler already compiled in
    section 1, used for its own preset (a new one would compile the UNet again)."""
    from cifar5m.sample import Sampler
    from shards import derive_seed

    seeds = [derive_seed(0, "bench", i) for i in range(batch)]
    rates = {}
    for name, steps in presets:
        sampler = (
            ready
            if ready is not None and (ready.sampler, ready.steps) == (name, steps)
            else Sampler(
                unet,
                ddpm_scheduler_config(),
                name,
                steps,
                device,
                dtype,
                compile=compile_mode is not None,
                compile_mode=compile_mode or "default",
            )
        )
        sampler.sample(seeds[:batch])  # warm-up
        seconds = best_seconds(lambda s=sampler: s.sample(seeds).cpu(), device, 1)
        rates[name] = batch / seconds
        hours = IMAGES / rates[name] / 3600 * (1000 / steps if name == "ddpm" else 1)
        RESULTS.setdefault("presets", {})[f"{name}-{steps}"] = dict(
            images_per_s=rates[name], hours_6m=hours, batch=batch, steps=steps, compile_mode=compile_mode or "eager"
        )
        write_json()
        print(
            f"  ours {name:5} {steps:4} steps batch {batch}: {rates[name]:9,.1f} images/s "
            f"({rates[name] * steps * GFLOP_PER_IMAGE_STEP / 1e3:5.1f} TFLOP/s); 6M images "
            f"{'at 1000 steps ' if name == 'ddpm' else ''}in {hours:6.2f} h",
            flush=True,
        )
    return rates


def versus_pipeline(unet, compiled, device, batch: int, steps: int) -> None:
    from diffusers import DDPMPipeline, DDPMScheduler

    from cifar5m.sample import Sampler
    from shards import derive_seed

    scheduler = DDPMScheduler.from_config(ddpm_scheduler_config())
    pipe = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator(device).manual_seed(0)
    run = lambda: pipe(batch_size=batch, num_inference_steps=steps, output_type="np", generator=gen)  # noqa: E731
    run()
    base = batch / best_seconds(run, device, 1)
    seeds = [derive_seed(0, "bench", i) for i in range(batch)]
    print(f"  baseline DDPMPipeline fp32 (its default), batch {batch}, {steps} steps: {base:9,.1f} images/s")
    for label, module, dtype in [
        ("ours fp32 eager", unet, "fp32"),
        ("ours bf16 eager", unet, "bf16"),
        ("ours bf16 compiled", compiled, "bf16"),
    ]:
        sampler = Sampler(module, ddpm_scheduler_config(), "ddpm", steps, device, dtype)
        sampler.sample(seeds)
        rate = batch / best_seconds(lambda s=sampler: s.sample(seeds).cpu(), device, 1)
        print(f"  {label:26}: {rate:9,.1f} images/s = {rate / base:5.2f}x baseline", flush=True)


def determinism(unet, compiled, device, batch: int, big_batch: int) -> None:
    from cifar5m.sample import Sampler
    from shards import derive_seed

    seeds = [derive_seed(0, "det", i) for i in range(big_batch)]
    fast = Sampler(compiled, ddpm_scheduler_config(), "dpmpp", 20, device, "bf16" if device.type == "cuda" else "fp32")
    same = torch.equal(fast.sample(seeds), fast.sample(seeds))
    eager = Sampler(unet, ddpm_scheduler_config(), "dpmpp", 20, device, "bf16" if device.type == "cuda" else "fp32")
    whole = eager.sample(seeds[:batch])
    quarters = torch.cat([eager.sample(seeds[i : i + batch // 4]) for i in range(0, batch, batch // 4)])
    diff = (quarters.int() - whole.int()).abs()
    print(
        f"  compiled, same {big_batch} seeds twice: {'byte-identical' if same else 'DIFFERENT'}; eager batch "
        f"{batch} vs 4 x {batch // 4}: max |diff| {diff.max().item()} levels, "
        f"{(diff > 0).float().mean().item():.4%} of values differ (rounding)",
        flush=True,
    )


def compiled_throughput(unet, device, dtype, batches, modes) -> dict:
    """Section 1 for each compile mode of our Sampler ({mode: its dpmpp-20 Sampler}); each mode starts from
    a cleared compiler cache, so one mode's graphs do not stand in for another's."""
    from cifar5m.sample import Sampler

    samplers = {}
    for mode in modes:
        torch.compiler.reset()
        try:
            sampler = Sampler(
                unet, ddpm_scheduler_config(), "dpmpp", 20, device, dtype, compile=True, compile_mode=mode
            )
            unet_throughput(sampler, batches, device, 3, f"compiled {mode}")
            samplers[mode] = sampler
        except Exception as exc:  # report and go on: one mode failing to compile must not hide the others
            traceback.print_exc()
            RESULTS.setdefault("errors", {})[f"compiled {mode}"] = f"{type(exc).__name__}: {exc}"[:300]
            write_json()
    return samplers


def fastest_mode(batch: int, modes: list[str]) -> str:
    """The compile mode with the most UNet evals/s at `batch` in section 1 (the first if none was measured)."""
    measured = {
        r["variant"].removeprefix("compiled "): r["evals_per_s"]
        for r in RESULTS.get("unet", {}).values()
        if r["batch"] == batch and r["variant"].startswith("compiled ")
    }
    return max(measured, key=measured.get) if measured else modes[0]


def write_json() -> None:  # atomic: the process may be killed at any moment
    """After every figure: a run stopped at its time budget (bench/gpu_figures.py) keeps what it measured."""
    if JSON_PATH:
        write_json_atomic(JSON_PATH[0], RESULTS)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, no compile")
    parser.add_argument("--skip-unet", action="store_true", help="skip section 1 (UNet throughput)")
    parser.add_argument(
        "--parts",
        default="unet,presets,pipeline,determinism",
        help="sections to run: unet,presets,pipeline,determinism",
    )
    parser.add_argument(
        "--batches",
        help="UNet batch sizes of section 1 (default 256,1024,4096; smoke 4,8); "
        "the presets run at the second (or only) one",
    )
    parser.add_argument(
        "--compile-modes",
        default="default",
        help="torch.compile modes of sections 1-2, e.g. default,reduce-overhead (CUDA graphs)",
    )
    parser.add_argument("--presets", default="dpmpp:20,ddim:100,ddpm:50", help="NAME:STEPS of section 2")
    parser.add_argument("--json", help="also write the figures here (after every section)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    parts = set(args.parts.split(",")) - ({"unet"} if args.skip_unet else set())
    JSON_PATH[:] = [args.json] if args.json else []
    device = torch.device("cpu" if args.smoke else "cuda")
    default_batches = "4,8" if args.smoke else "256,1024,4096"
    batches = [int(b) for b in (args.batches or default_batches).split(",")]
    dtype = "fp32" if args.smoke else "bf16"
    import diffusers

    from cifar5m.sample import Sampler

    unet = build_unet(args.smoke)
    params = sum(p.numel() for p in unet.parameters())
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        f"{name}; torch {torch.__version__}, diffusers {diffusers.__version__}; UNet {params:,} parameters"
        f"{'' if args.smoke or params == 35_746_307 else ' (EXPECTED 35,746,307)'}",
        flush=True,
    )
    torch.backends.cudnn.benchmark = False  # the generator's setting: same algorithms every run
    start = time.perf_counter()
    modes = args.compile_modes.split(",")
    eager = Sampler(unet, ddpm_scheduler_config(), "dpmpp", 20, device, dtype)
    samplers = {}
    if "unet" in parts:
        print("1. UNet throughput (bf16 autocast, channels_last)")
        unet_throughput(eager, batches, device, 3, "eager")
        if not args.smoke:  # the smoke run on the CPU stays eager
            samplers = compiled_throughput(unet, device, dtype, batches, modes)
    batch = batches[1] if len(batches) > 1 else batches[0]
    if "presets" in parts:
        mode = None if args.smoke else fastest_mode(batch, modes)
        print(f"2. our sampler, {'eager' if mode is None else 'compiled ' + mode} UNet")
        presets = [(p.split(":")[0], int(p.split(":")[1]) if not args.smoke else 4) for p in args.presets.split(",")]
        sampler_throughput(unet, device, dtype, batch, presets, mode, samplers.get(mode))
    compiled = torch.compile(eager.unet) if not args.smoke else eager.unet  # sections 3-4, as before
    if "pipeline" in parts:
        print("3. our loop vs diffusers.DDPMPipeline (same UNet, DDPMScheduler, steps, batch)")
        versus_pipeline(unet, compiled, device, batches[0], 50 if not args.smoke else 4)
    if "determinism" in parts:
        print("4. determinism")
        determinism(unet, compiled, device, batches[0], batch)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
