"""Generation on local worker processes: `python -m cifar5m generate --workers N` (and the demo).

    result = run_processes(plan, workers=2, progress=bar)   # plan from cifar5m.generate.plan_run

The same unit of work as every other runner (`ShardMaker.run_shard`, see generate.py), handed out one
shard at a time to `workers` processes that each load the models once: on the CPU each with one torch
thread (`CPU_THREADS`), on CUDA worker i on `cuda:i`. The shards are byte-identical to a single-process
run's, and the manifest is assembled the same way at the end.
Why processes and not torch threads: on a 2-core machine the digits UNet sampled ~190 images/s with 2
threads when the machine was idle, but ~25/s while one other job ran (threads spin waiting for each
other); with 1 thread per process it degrades in proportion to the load instead. Two 1-thread
processes made ~210 images/s on the idle machine (measured through the Ray runner, same layout).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from cifar5m.errors import Cifar5mError
from cifar5m.generate import CPU_THREADS, Progress, RunPlan, RunResult, ShardMaker, run_pending
from shards import ShardStats
from shards.runtime import resolve_device

_maker = None  # the worker process's ShardMaker
_updates = None  # the queue its pid and batch counts go to


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each worker: all 'cpu', or cuda:0..N-1 (checked against the visible GPUs)."""
    if workers > 1 and device not in ("auto", "cpu", "cuda"):
        raise Cifar5mError(
            f"--device {device} with --workers {workers}: worker i uses cuda:i; pass --device "
            "cuda (or auto), or --workers 1 to use that one device"
        )
    resolved = resolve_device(device, Cifar5mError)
    if resolved.type == "cpu" or workers == 1:
        return [str(resolved)] * workers
    count = torch.cuda.device_count()
    if workers > count:
        raise Cifar5mError(
            f"--workers {workers}: only {count} CUDA devices are visible and worker i uses cuda:i; "
            f"pass --workers {count} or fewer (or --device cpu)"
        )
    return [f"cuda:{i}" for i in range(workers)]


def _start_worker(plan: RunPlan, updates, devices) -> None:
    global _maker, _updates
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops the workers)
    torch.set_num_threads(CPU_THREADS)  # the same CPU arithmetic as every runner (generate.py)
    device = devices.get()  # each worker takes the next device of the list
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    _maker, _updates = ShardMaker(plan, device), updates
    updates.put(("pid", os.getpid()))


class _QueueProgress:
    def update(self, n: int) -> None:
        _updates.put(("images", n))


def _run_shard(spec) -> ShardStats:
    return _maker.run_shard(spec, _QueueProgress())


def _drain(updates, progress: Progress | None, pids: set[int]) -> None:
    while not updates.empty():
        kind, value = updates.get()
        if kind == "pid":
            pids.add(value)
        elif progress:
            progress.update(value)


def run_processes(plan: RunPlan, workers: int, progress: Progress | None = None) -> RunResult:
    """Make every pending shard on `workers` local processes, then assemble the manifest if complete.

    A shard whose worker fails is reported in `result.failed` and left for the next run to redo. On
    Ctrl-C the workers are stopped at once: a shard is committed by an atomic rename, so none is left
    half-written, and the next run removes their temporary files.
    """
    devices = worker_devices(plan.cfg.device, workers)  # checked before anything is written
    return run_pending(plan, progress, lambda writer, specs, result: _make_all(plan, specs, devices, result, progress))


def _make_all(plan: RunPlan, specs: list, devices: list[str], result: RunResult, progress: Progress | None) -> None:
    context = multiprocessing.get_context("spawn")  # fork would copy this process's torch thread pools (and CUDA)
    updates, pids, device_queue = context.Queue(), set[int](), context.Queue()
    for device in devices:
        device_queue.put(device)
    pool = ProcessPoolExecutor(
        max_workers=min(len(devices), len(specs)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(plan, updates, device_queue),
    )
    try:
        futures = {pool.submit(_run_shard, spec): spec for spec in specs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            _drain(updates, progress, pids)
            for future in done:
                try:
                    result.written.append(future.result())
                except Exception as exc:  # one shard's failure is reported; the others go on
                    result.failed.append(f"{futures[future].relpath}: {type(exc).__name__}: {exc}")
    except BaseException:  # Ctrl-C or an error here: stop the workers now rather than after the queue
        pool.shutdown(wait=False, cancel_futures=True)
        _drain(updates, None, pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise
    pool.shutdown()
    _drain(updates, progress, pids)
