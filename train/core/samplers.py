"""The two index samplers and the ledger that proves what each world drew.

    real = RealSampler(pool_size=5_000_000, n=50_000, seed=0)    # a seeded subset, reshuffled each epoch
    ideal = IdealSampler(pool_size=5_000_000, seed=0)            # one pass over the pool, no repeats
    idx = real.indices(step, batch_size)                          # global pool indices of one global batch
    ledger = Ledger(pool_size); ledger.record(idx); ledger.summary(real.subset)

A sampler is a pure function of (seed, step): the batch at step s never depends on what ran before, so
resumed runs and every DDP rank see the same stream (each rank takes its slice of the global batch).
Batches run on across epoch (Real) or pass (Ideal) boundaries, so every batch is full.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from train.errors import TrainError


def derive_seed(seed: int, *names) -> int:
    """A 63-bit seed from the run seed and a path of names/numbers: independent streams per purpose."""
    digest = hashlib.sha256(json.dumps([seed, *names]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _permutation(size: int, seed: int, *names) -> np.ndarray:
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *names))).permutation(size)


class _EpochStream:
    """Positions 0, 1, 2, ... of an endless stream made of seeded permutations of `size` items."""

    def __init__(self, size: int, seed: int, name: str):
        self.size, self.seed, self.name = size, seed, name
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            if len(self._orders) >= 2:  # batches touch at most two epochs at a time
                self._orders.pop(min(self._orders))
            self._orders[epoch] = _permutation(self.size, self.seed, self.name, epoch)
        return self._orders[epoch]

    def take(self, start: int, count: int) -> np.ndarray:
        pos = np.arange(start, start + count, dtype=np.int64)
        epochs, offsets = np.divmod(pos, self.size)
        out = np.empty(count, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            out[mask] = self.order(int(epoch))[offsets[mask]]
        return out


class RealSampler:
    """Real World: a seeded subset of n pool samples (nested across n for one seed), reshuffled each epoch."""

    kind = "real"

    def __init__(self, pool_size: int, n: int, seed: int):
        self.check_n(n, pool_size)
        self.pool_size, self.n, self.seed = pool_size, n, seed
        # The first n of one permutation: the n=5K subset of a seed lies inside its n=10K subset.
        self.subset = np.sort(_permutation(pool_size, seed, "subset")[:n])
        self.subset_hash = hashlib.sha256(self.subset.astype("<i8").tobytes()).hexdigest()[:16]
        self._stream = _EpochStream(n, seed, "real-order")

    @staticmethod
    def check_n(n: int, pool_size: int) -> None:
        if n > pool_size:
            raise TrainError(
                f"--n={n:,}: larger than the train pool of {pool_size:,} samples; "
                f"choose --n <= {pool_size:,} or a bigger dataset"
            )

    @property
    def epoch_size(self) -> int:
        return self.n

    def indices(self, step: int, batch_size: int) -> np.ndarray:
        return self.subset[self._stream.take(step * batch_size, batch_size)]

    def first_samples(self, count: int) -> np.ndarray:
        """The first `count` samples of the stream (<= n): the fixed train-evaluation subset."""
        return self.subset[self._stream.take(0, min(count, self.n))]

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "n": self.n,
            "pool_size": self.pool_size,
            "subset_hash": self.subset_hash,
        }


class IdealSampler:
    """Ideal World: a seeded permutation of the whole pool, read once (a new pass only with reuse)."""

    kind = "ideal"

    def __init__(self, pool_size: int, seed: int):
        self.pool_size, self.seed = pool_size, seed
        self.subset = None
        self.subset_hash = None
        self._stream = _EpochStream(pool_size, seed, "ideal-order")

    @property
    def epoch_size(self) -> int:
        return self.pool_size

    def indices(self, step: int, batch_size: int) -> np.ndarray:
        return self._stream.take(step * batch_size, batch_size)

    def first_samples(self, count: int) -> np.ndarray:
        return self._stream.take(0, min(count, self.pool_size))

    def state_dict(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "pool_size": self.pool_size}


def check_pool(mode: str, steps: int, batch_size: int, pool_size: int, allow_reuse: bool) -> None:
    """The Ideal World must never see a sample twice: refuse before training unless reuse is asked for."""
    draws = steps * batch_size
    if mode == "ideal" and draws > pool_size and not allow_reuse:
        raise TrainError(
            f"--steps={steps:,} x --batch-size={batch_size:,} = {draws:,} draws exceed the train pool of "
            f"{pool_size:,} samples, so the Ideal World would reuse samples; lower --steps, use a bigger "
            f"pool, or pass --allow-reuse (then {draws / pool_size:.2f} passes are reported)"
        )


class Ledger:
    """How many times each pool sample was drawn for training (by this rank, or summed over ranks).

    `once` (the Ideal World without --allow-reuse) makes "no sample is drawn twice" an invariant: a draw
    of a sample already counted is a TrainError, never a `no_reuse: false` in a summary of a finished run."""

    def __init__(self, pool_size: int, counts: np.ndarray | None = None, once: bool = False):
        self.counts = np.zeros(pool_size, dtype=np.int32) if counts is None else counts.astype(np.int32)
        self.once = once
        self.check()

    def record(self, indices: np.ndarray) -> None:
        np.add.at(self.counts, indices, 1)  # add.at: a batch may hold a sample twice when reuse is allowed
        if self.once:
            self.check(indices)

    def check(self, indices: np.ndarray | None = None) -> None:
        """With `once`: no sample (of `indices`, else of the pool) drawn more than once."""
        if not self.once:
            return
        counts = self.counts if indices is None else self.counts[indices]
        twice = np.flatnonzero(counts > 1)
        if len(twice):
            sample = int(twice[0] if indices is None else indices[twice[0]])
            raise TrainError(
                f"the Ideal World drew pool sample {sample:,} {int(self.counts[sample])} times (and "
                f"{len(twice) - 1:,} other samples more than once): it never reuses a sample, so the run "
                "stops without a summary; start it again with --overwrite (or pass --allow-reuse to "
                "allow passes over the pool)"
            )

    def summary(self, subset: np.ndarray | None, subset_hash: str | None) -> dict:
        """The proof stored in summary.json: counts recomputed from every recorded draw."""
        total = int(self.counts.sum(dtype=np.int64))
        used = int(np.count_nonzero(self.counts))
        out: dict[str, Any] = {
            "unique_samples": used,
            "total_draws": total,
            "pool_size": int(self.counts.size),
            "max_uses": int(self.counts.max()) if self.counts.size else 0,
            "no_reuse": bool(total == used),
        }
        if subset is None:
            out["passes"] = total / self.counts.size
        else:
            outside = total - int(self.counts[subset].sum(dtype=np.int64))
            out.update(
                passes=total / subset.size,
                subset_size=int(subset.size),
                subset_hash=subset_hash,
                within_subset=outside == 0,
            )
        return out
