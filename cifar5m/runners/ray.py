"""Run generation on a Ray cluster: one actor per GPU (or per CPU slot when there is none), a task per shard.

    python -m cifar5m generate --ray            # RAY_ADDRESS, a running local cluster, or a new local one
    python -m cifar5m generate --ray HOST:6379  # a given cluster

Each actor loads the models once (`ShardMaker`) and writes whole shards straight into the shared output
folder; the driver only plans, hands out shards, counts and assembles the manifest. A shard is a pure
function of the plan and its spec, so the shards are byte-identical to a local run's. Ray restarts a
dead actor and retries its task (`max_restarts`, `max_task_retries`); a shard that still fails is
reported and left for the next run, which redoes exactly the missing shards.
Every node needs this package importable (installed, or on PYTHONPATH) and the model/labeler paths.
"""

from __future__ import annotations

import logging

import torch

from cifar5m.generate import CPU_THREADS, Progress, RunPlan, RunResult, ShardMaker, run_pending
from shards import ShardStats

log = logging.getLogger(__name__)

MAX_RESTARTS = 3  # per actor: a killed or crashed worker is replaced this many times
MAX_TASK_RETRIES = 3  # per shard task, on actor death (not on errors raised by our code)


class ShardActor:
    """A Ray actor (wrapped with ray.remote in `run_ray`) holding one ShardMaker on its device."""

    def __init__(self, plan: RunPlan):
        if not torch.cuda.is_available():
            torch.set_num_threads(CPU_THREADS)  # one CPU slot per actor, the same arithmetic as every runner
        self.maker = ShardMaker(plan, "auto")

    def run_shard(self, spec) -> ShardStats:
        return self.maker.run_shard(spec)


def run_ray(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    """Make every pending shard (within --shards) on the cluster, then assemble the manifest if complete."""

    def make_shards(writer, specs, result: RunResult) -> None:
        _dispatch(_start_actors(plan, len(specs)), specs, result, progress)

    return run_pending(plan, progress, make_shards)


def _start_actors(plan: RunPlan, shard_count: int) -> list:
    import ray  # heavy and optional (the `ray` extra): only --ray runs load it

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    per_actor = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    count = min(gpus or max(int(resources.get("CPU", 1)), 1), shard_count)
    remote = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)(ShardActor)
    log.info("starting %d Ray actors (%s each)", count, per_actor)
    return [remote.options(**per_actor).remote(plan) for _ in range(count)]


def _dispatch(actors: list, specs: list, result: RunResult, progress: Progress | None) -> None:
    """Keep every actor busy with one shard at a time until all are done or failed."""
    import ray  # heavy and optional (the `ray` extra): only --ray runs load it

    queue = list(reversed(specs))
    running = {}  # future -> (actor, spec)

    def submit(actor) -> None:
        if queue:
            spec = queue.pop()
            running[actor.run_shard.remote(spec)] = (actor, spec)

    for actor in actors:
        submit(actor)
    while running:
        [done], _ = ray.wait(list(running), num_returns=1)
        actor, spec = running.pop(done)
        try:
            stats = ray.get(done)
        except ray.exceptions.RayActorError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.failed.append(f"{spec.relpath}: worker lost ({reason})")
            continue  # this actor is gone for good (after its restarts): the others take its share
        except ray.exceptions.RayTaskError as exc:
            result.failed.append(f"{spec.relpath}: {str(exc.cause) if exc.cause else exc}")
        else:
            result.written.append(stats)
            if progress:
                progress.update(stats.samples)
        submit(actor)
    result.failed += [f"{spec.relpath}: not started (no Ray worker left)" for spec in reversed(queue)]
