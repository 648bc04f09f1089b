"""Distributed helpers: one process per device under torchrun, or a single process without it.

    torchrun --nproc_per_node=2 -m train run ...   # nccl on GPUs, gloo on CPU

`init_distributed` reads torchrun's RANK/WORLD_SIZE/LOCAL_RANK; with WORLD_SIZE unset it returns a
single-process Dist and every helper here is a no-op, so the loop has one code path. The process group
is created once per process and kept for its lifetime: several runs in one torchrun process (sweeps)
share it, because re-creating a group on torchrun's store can hang (measured: gloo, 2 ranks).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from train.errors import TrainError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> Dist:
    if tdist.is_available() and tdist.is_initialized():
        return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local)
    tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    atexit.register(_destroy)
    return Dist(rank, world, local)


def _destroy() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, dist: Dist) -> torch.Tensor:
    """The sum over ranks (a new tensor on the input's device; the input itself when not distributed)."""
    if not dist.active:
        return tensor
    if tdist.get_backend() == "nccl" and tensor.device.type != "cuda":
        # nccl reduces GPU tensors only (the ledger lives on the host).
        on_gpu = tensor.to(torch.device("cuda", dist.local_rank))
        tdist.all_reduce(on_gpu, op=tdist.ReduceOp.SUM)
        return on_gpu.to(tensor.device)
    tdist.all_reduce(tensor, op=tdist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: torch.nn.Module, dist: Dist) -> None:
    """BatchNorm running stats drift apart across ranks between forwards: use rank 0's everywhere."""
    if dist.active:
        for buf in module.buffers():
            tdist.broadcast(buf, src=0)


def run_on_main(dist: Dist, fn: Callable[[], Any]) -> Any:
    """Run fn on rank 0 and share its result; a TrainError there is raised on every rank (no hang)."""
    if not dist.active:
        return fn()
    box: list[Any] = [None]
    if dist.is_main:
        try:
            box[0] = ("ok", fn())
        except TrainError as exc:
            box[0] = ("error", str(exc))
    tdist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise TrainError(value)
    return value
