"""Run independent tasks in this process, in local worker processes, or on a Ray cluster.

    for result in map_unordered(fn, tasks, workers=4): ...     # results in completion order

One small function serves the source staging, the scan and the shard builds: every task is a pure
function of its arguments (the shard is the unit of work), so where it runs never changes the output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import nullcontext
from multiprocessing import get_context
from typing import Any

from shards.runtime import start_ray


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def no_bar(desc: str, total: int, unit: str):
    """The default progress reporter `bar(desc, total, unit)`: a context giving `.update(n)`; the CLI's is tqdm."""
    return nullcontext(_NoBar())


def map_unordered(
    fn: Callable[..., Any], tasks: Sequence[tuple], workers: int = 1, use_ray: bool = False
) -> Iterator[Any]:
    """Yield fn(*task) for every task as each finishes; the first error is raised (others are cancelled)."""
    if use_ray:
        yield from _ray_map(fn, tasks)
    elif workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fn(*task)
    else:
        # spawn, not fork: the parent may hold threads (tqdm's monitor, Ray), unsafe to fork.
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
            pending = {pool.submit(fn, *task) for task in tasks}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()


def _ray_map(fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[Any]:
    import ray  # deferred: heavy, and only --ray needs it

    start_ray()
    # A task whose worker dies is retried by Ray; errors raised by our code are not (max_retries counts
    # system failures only unless retry_exceptions is set).
    remote = ray.remote(num_cpus=1, max_retries=3)(fn)
    pending = [remote.remote(*task) for task in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
