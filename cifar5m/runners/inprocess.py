"""The default runner: every pending shard in this process, on one device (`python -m cifar5m generate`).

    result = run_local(plan, progress=bar)   # plan from cifar5m.generate.plan_run

On the CPU it uses `CPU_THREADS` torch threads (restored afterwards) so its bytes match the other
runners'; `--workers N` spreads a CPU generation over N cores instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cifar5m.generate import Progress, RunPlan, RunResult, ShardMaker, fixed_cpu_threads, run_pending


def run_local(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    """Make every pending shard (within --shards) in this process, then assemble the manifest if complete.

    While shard N is written (PNG encoding, hashing) on a helper thread, shard N + 1 is sampled.
    Ctrl-C waits for a shard being written to commit; the shard being sampled is simply dropped.
    """

    def make_shards(writer, specs, result: RunResult) -> None:
        maker = ShardMaker(plan, plan.cfg.device, writer)
        with fixed_cpu_threads(maker.device), ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = None
            for spec in specs:
                samples, extra = maker.make_samples(spec, progress)
                if in_flight is not None:
                    result.written.append(in_flight.result())
                in_flight = pool.submit(writer.write_shard, spec, samples, extra)
            result.written.append(in_flight.result())

    return run_pending(plan, progress, make_shards)
