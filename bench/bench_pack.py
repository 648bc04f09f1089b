"""Packed training on CPU: K runs as one packed model vs the same K runs one after another, same run.

    python bench/bench_pack.py [--runs 8] [--steps 6] [--threads 1] [--cases demo,tiny,cifar]

Both sides are the trainer's own code on the same tiny on-disk dataset: baseline = K `Trainer`s, each
taking its `train_step` (batch gather, augmentation, forward/backward, SGD), run after run; packed = one
`PackedTrainer` over K lanes built the same way (`train.run.packed`). The K runs differ in world, n and
seed like a sweep's. Steps of the two sides are interleaved, one step each in turn, so background load
(the machine is shared) hits both alike. Prints steps/s of all K runs and the ratio packed / baseline.

Cases (name: model width, image, batch): demo: mcnn 64 on 8x8x1 at batch 128 (the digits demo's runs);
tiny: mcnn 8 on 8x8x1 at batch 32 (overhead-bound); cifar: mcnn 16 on 32x32x3 at batch 128.
A second table times the model alone (forward+backward of all K) three ways: one by one, the
`torch.func` alternative (`stack_module_state` + `vmap(functional_call)`) and the packed model.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from train_fixtures import build_dataset  # noqa: E402

from train.core.config import RunConfig  # noqa: E402  (after the path set-up above)
from train.core.ddp import Dist  # noqa: E402
from train.run.loop import Trainer  # noqa: E402
from train.run.packed import PackedTrainer  # noqa: E402

CASES = {"demo": (64, 8, 1, 128), "tiny": (8, 8, 1, 32), "cifar": (16, 32, 3, 128)}


def run_configs(data: Path, out: Path, runs: int, width: int, batch: int, steps: int) -> list[RunConfig]:
    """K runs like a sweep's: Real at two n and Ideal, over seeds."""
    base = RunConfig(
        data=str(data),
        model="mcnn",
        width=width,
        batch_size=batch,
        steps=steps,
        lr=0.05,
        momentum=0.9,
        aug="crop-flip",
        device="cpu",
        num_workers=0,
        eval_train_samples=64,
    )
    cfgs = []
    for k in range(runs):
        world = dict(mode="ideal", n=None) if k % 3 == 2 else dict(mode="real", n=200 * (1 + k % 3))
        cfgs.append(dataclasses.replace(base, seed=k, out_dir=str(out / f"run{k}"), **world))
    return cfgs


def time_case(name: str, runs: int, steps: int, tmp: Path) -> tuple[float, float]:
    """Steps/s of all runs (K run-steps = one step) for the baseline and the packed trainer."""
    width, size, channels, batch = CASES[name]
    data = build_dataset(
        tmp / name, train=max(batch * (steps + 2), 600), test=64, size=size, channels=channels, per_shard=batch * 4
    )
    cfgs = run_configs(data, tmp / f"{name}-runs", runs, width, batch, steps + 1)
    alone = [Trainer(cfg, Dist(), torch.device("cpu"), progress=False) for cfg in cfgs]
    packed = PackedTrainer([Trainer(cfg, Dist(), torch.device("cpu"), progress=False) for cfg in cfgs], progress=False)
    for trainer in alone:
        trainer.train_step(trainer.model)  # warm-up: first-call allocations are not throughput
    packed.train_step()
    took = [0.0, 0.0]
    for _ in range(steps):
        start = time.perf_counter()
        for trainer in alone:
            trainer.train_step(trainer.model)
        middle = time.perf_counter()
        packed.train_step()
        took[0] += middle - start
        took[1] += time.perf_counter() - middle
    return steps / took[0], steps / took[1]


def time_model_only(name: str, runs: int, steps: int) -> tuple[float, float, float]:
    """Forward+backward s/step of K mcnn models: one by one, `vmap(functional_call)` over stacked weights
    (`torch.func.stack_module_state`, BN buffers stacked too), and the packed grouped-conv model."""
    from torch.func import functional_call, stack_module_state, vmap

    from train.core.models import build_model
    from train.core.packing import pack_model, packed_input

    width, size, channels, batch = CASES[name]
    cfg = RunConfig(model="mcnn", width=width)
    models = []
    for k in range(runs):
        torch.manual_seed(k)
        models.append(build_model(cfg, 10, channels, size))
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")
    packed = pack_model(models)
    xs = torch.randn(runs, batch, channels, size, size)

    def one_by_one():
        for model, x in zip(models, xs):
            model(x).sum().backward()

    def vmapped():
        vmap(lambda p, b, x: functional_call(skeleton, (p, b), (x,)))(params, buffers, xs).sum().backward()

    def packed_step():
        packed(packed_input(list(xs))).sum().backward()

    took = [0.0, 0.0, 0.0]
    for fn in (one_by_one, vmapped, packed_step):
        fn()  # warm-up
    for _ in range(steps):  # interleaved, as above
        for i, fn in enumerate((one_by_one, vmapped, packed_step)):
            start = time.perf_counter()
            fn()
            took[i] += time.perf_counter() - start
    return took[0] / steps, took[1] / steps, took[2] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="K: runs packed together")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--cases", default="demo,tiny,cifar", help=f"comma list of {', '.join(CASES)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"K = {args.runs} mcnn runs (Real and Ideal, seeds 0..{args.runs - 1}), SGD momentum 0.9, crop+flip, "
        f"{args.steps} timed steps, {args.threads} torch thread(s)"
    )
    print("| case | one after another: steps/s of all K | packed: steps/s of all K | ratio |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            width, size, channels, batch = CASES[name]
            base, packed = time_case(name, args.runs, args.steps, Path(tmp))
            print(
                f"| {name}: mcnn {width}, {size}x{size}x{channels}, batch {batch} | {base:.2f} | {packed:.2f} | "
                f"{packed / base:.2f}x |"
            )
    print("\nModel only, forward+backward of all K (the design choice): s/step and speed vs one by one")
    print("| case | one by one | vmap(functional_call) | packed (grouped conv) |\n|---|---:|---:|---:|")
    for name in args.cases.split(","):
        alone, vmapped, packed = time_model_only(name, args.runs, args.steps)
        print(
            f"| {name} | {alone:.4f} s | {vmapped:.4f} s ({alone / vmapped:.2f}x) | {packed:.4f} s "
            f"({alone / packed:.2f}x) |"
        )


if __name__ == "__main__":
    main()
