"""Progress and summary of a generation, the one place both `cifar5m generate` and the demo print them.

    run_with_bar(plan, lambda bar: run_local(plan, bar))   # any runner of cifar5m/runners/

A tqdm bar over images while the runner works, then the summary: what this run wrote, the dataset's
state, class balance, labeler confidence, and either where the manifest is or how to finish; failed
shards end as one Cifar5mError (the run is resumable, so re-running retries them).
"""

from __future__ import annotations

import time

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cifar5m.errors import Cifar5mError
from cifar5m.extras import write_extras


class ProgressBar:
    """The CLI's tqdm bar over images (images/s and ETA); runners call start(total) then update(n)."""

    def __init__(self):
        self.bar = None

    def start(self, total: int) -> None:
        self.bar = tqdm(total=total, unit="img", desc="generate", smoothing=0.05, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_with_bar(plan, runner) -> None:
    """Run `runner(progress)` under a tqdm bar over images, then print the dataset summary; failed
    shards become one error (the run is resumable, so re-running retries them)."""
    bar = ProgressBar()
    try:
        with logging_redirect_tqdm():
            result = runner(bar)
    finally:
        bar.close()
    print_summary(plan, result)
    if result.failed:
        raise Cifar5mError(
            f"{len(result.failed)} shards failed (first: {result.failed[0]}); re-run the same command to retry them"
        )


def print_summary(plan, result) -> None:
    cfg, writer = plan.cfg, plan.writer()
    stats = writer.committed_stats()
    rate = result.images_written / result.wall_s if result.wall_s > 0 else 0.0
    print(
        f"this run: {len(result.written)} shards, {result.images_written:,} images in "
        f"{time.strftime('%H:%M:%S', time.gmtime(result.wall_s))} ({rate:,.1f} images/s); "
        f"{result.planned_shards - result.pending_shards} shards were already complete"
    )
    for failure in result.failed[:10]:
        print(f"FAILED {failure}")
    done = sum(s.samples for s in stats)
    total = sum(cfg.splits().values())
    print(f"dataset {cfg.out_dir}: {len(stats)}/{result.planned_shards} shards, {done:,}/{total:,} images")
    counts = [sum(s.label_counts[k] for s in stats) for k in range(len(plan.class_names))]
    print("classes: " + ", ".join(f"{name} {c / max(done, 1):.1%}" for name, c in zip(plan.class_names, counts)))
    if done:
        print(f"mean labeler confidence (max prob): {sum(s.extra['max_prob_sum'] for s in stats) / done:.3f}")
    if result.manifest is None:
        print(
            f"manifest.json not written yet: {result.planned_shards - len(stats)} shards missing; run the same "
            "command without --shards (or wait for the other jobs) to finish"
        )
        return
    extras = write_extras(cfg.out_dir, result.manifest, stats)
    foreign = writer.foreign_files()
    if foreign:  # not ours to delete, and `shards verify` fails on them: say so instead of "complete"
        listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise Cifar5mError(
            f"{cfg.out_dir}/manifest.json written, but data/ also holds {len(foreign)} file(s) "
            f"that are not this dataset's shards ({listed}); `python -m shards verify` flags them: "
            "move them out of data/"
        )
    print(
        f"complete: {cfg.out_dir}/manifest.json written, pictures in {extras}; "
        f"check it with `python -m shards verify {cfg.out_dir}`"
    )
