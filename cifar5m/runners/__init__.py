"""The runners of `python -m cifar5m generate`: one family, one unit of work.

    inprocess.run_local(plan, progress)               # default: this process, one device
    processes.run_processes(plan, workers, progress)  # --workers N: N local processes (CPU, or cuda:0..N-1)
    ray.run_ray(plan, progress)                       # --ray: a Ray cluster, an actor per GPU or CPU slot

Each hands the pending shards of `cifar5m.generate.run_pending` to `ShardMaker.run_shard`, so all three
write the same bytes (CPU generations use `generate.CPU_THREADS` torch threads in every runner).
"""
