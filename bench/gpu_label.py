"""GPU benchmark of the paper's labeler: BiT-M-R152x2 at 128 px through our Labeler (uint8 32x32 in).

    python bench/gpu_label.py                  # figures for bench/RESULTS.md (H200: a few minutes)
    python bench/gpu_label.py --compile        # also torch.compile
    python bench/gpu_label.py --smoke          # CPU, batch 2: checks that the script runs
    python bench/gpu_label.py --smoke --model test_resnet --json out.json   # seconds (bench/gpu_figures.py --tiny)

Self-contained (the GPU machine has no internet): timm `resnetv2_152x2_bit` with a random 10-way head
(random weights cost the same to run as trained ones), its data config set to BiT-HyperRule's evaluation
size, 128 px (google-research/big_transfer `bit_hyperrule.py`). Our `cifar5m.label.Labeler` upsamples the
stored uint8 32x32 images to 128 on the device, normalises, and runs the model under autocast; the
channels_last layout is applied as the trainer does. Reports images/s per batch size, GFLOP per image
(torch's FlopCounterMode), the fraction of the bf16 peak, and the hours to label CIFAR-5m's 6,002,688 images:
add them to the sampler's hours (bench/gpu_sampler.py) for the 6M-image pipeline's total.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shards.jsonio import write_json_atomic  # noqa: E402  (the repository root is on sys.path from here)

PEAK_TFLOPS = 790.0  # bf16 dense matmul measured on an H200 (bench/RESULTS.md, gpu_sampler)
IMAGES = 6_002_688  # CIFAR-5m's size
INPUT = 128  # BiT-HyperRule evaluation resolution for images < 96 px


def build_labeler(device: torch.device, dtype: torch.dtype, compile_model: bool, name: str = "resnetv2_152x2_bit"):
    import timm

    from cifar5m.label import Labeler

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval().requires_grad_(False)
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, INPUT, INPUT), "crop_pct": 1.0}
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    labeler = Labeler(model, device, dtype)
    if compile_model:
        labeler.model = torch.compile(labeler.model)
    return labeler


def gflop_per_image(labeler) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, INPUT, INPUT, device=labeler.device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        labeler.model(x)
    return counter.get_total_flops() / 1e9


def images_per_s(labeler, batch: int, repeats: int) -> float:
    images = torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8, device=labeler.device)
    labeler(images)  # warm-up (and compile)
    best = float("inf")
    for _ in range(repeats):
        if labeler.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        labeler(images).cpu()
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, fp32, batch 2, one repeat")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--batches", default="128,256,512,1024", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="resnetv2_152x2_bit", help="timm model (test_resnet: a toy for checks)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batches = [2] if args.smoke else [int(b) for b in args.batches.split(",")]
    repeats = 1 if args.smoke else args.repeats
    labeler = build_labeler(device, dtype, args.compile, args.model)
    params = sum(p.numel() for p in labeler.model.parameters())
    gflop = gflop_per_image(labeler)
    results = dict(model=args.model, gflop_per_image=gflop, input_px=INPUT, device=str(device), batches={})
    print(
        f"{args.model}, 10-way head: {params / 1e6:.1f}M parameters, {gflop:.1f} GFLOP per image at "
        f"{INPUT} px; {device} {str(dtype).removeprefix('torch.')}{' compiled' if args.compile else ''}"
    )
    for batch in batches:
        rate = images_per_s(labeler, batch, repeats)
        peak = rate * gflop / 1e3 / PEAK_TFLOPS if device.type == "cuda" else None  # no bf16 peak on a CPU
        results["batches"][str(batch)] = dict(images_per_s=rate, peak_fraction=peak, hours_6m=IMAGES / rate / 3600)
        print(
            f"batch {batch:5d}: {rate:10,.1f} images/s, {'-' if peak is None else f'{peak:.1%}':>6} of bf16 peak, "
            f"{IMAGES / rate / 3600:8.2f} h for {IMAGES:,} images",
            flush=True,
        )
        if args.json:  # after every batch: a run stopped at its time budget keeps what it measured
            write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
