"""Real and Ideal samplers and the ledger: counts from first principles, determinism, rank slicing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train.core import ddp
from train.core.samplers import IdealSampler, Ledger, RealSampler, check_pool
from train.data.sources import MemorySource
from train.errors import TrainError


def test_real_stays_within_its_n_and_covers_it_every_epoch():
    sampler = RealSampler(pool_size=1000, n=60, seed=5)
    assert len(sampler.subset) == 60 and len(set(sampler.subset.tolist())) == 60
    draws = np.concatenate([sampler.indices(step, 16) for step in range(30)])  # 480 draws = 8 epochs
    assert set(draws.tolist()) <= set(sampler.subset.tolist())
    epochs = draws.reshape(8, 60)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == sorted(sampler.subset.tolist())  # each epoch: every sample once
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
    ledger = Ledger(1000)
    ledger.record(draws)
    summary = ledger.summary(sampler.subset, sampler.subset_hash)
    assert summary["within_subset"] and summary["unique_samples"] == 60 and summary["passes"] == 8
    assert summary["max_uses"] == 8 and not summary["no_reuse"]


def test_real_is_deterministic_and_nested_across_n():
    a, b = RealSampler(1000, 100, seed=1), RealSampler(1000, 100, seed=1)
    assert a.subset_hash == b.subset_hash and np.array_equal(a.indices(7, 32), b.indices(7, 32))
    assert RealSampler(1000, 100, seed=2).subset_hash != a.subset_hash
    assert set(RealSampler(1000, 50, seed=1).subset.tolist()) <= set(a.subset.tolist())


def test_ideal_never_repeats_within_the_pool():
    sampler = IdealSampler(pool_size=500, seed=3)
    draws = np.concatenate([sampler.indices(step, 20) for step in range(25)])  # exactly one pass
    assert sorted(draws.tolist()) == list(range(500))
    ledger = Ledger(500)
    ledger.record(draws)
    assert ledger.summary(None, None) == {
        "unique_samples": 500,
        "total_draws": 500,
        "pool_size": 500,
        "max_uses": 1,
        "no_reuse": True,
        "passes": 1.0,
    }


def test_ideal_reuse_reports_passes():
    sampler = IdealSampler(pool_size=50, seed=0)
    ledger = Ledger(50)
    for step in range(10):  # 10 x 16 = 160 draws = 3.2 passes, batches straddle pass boundaries
        ledger.record(sampler.indices(step, 16))
    summary = ledger.summary(None, None)
    assert summary["passes"] == pytest.approx(3.2) and not summary["no_reuse"] and summary["max_uses"] == 4


def test_check_pool_and_n_errors():
    check_pool("ideal", 10, 50, 500, allow_reuse=False)
    with pytest.raises(TrainError, match="11 x --batch-size=50 = 550 draws exceed the train pool of 500"):
        check_pool("ideal", 11, 50, 500, allow_reuse=False)
    check_pool("ideal", 11, 50, 500, allow_reuse=True)
    check_pool("real", 1000, 50, 500, allow_reuse=False)
    with pytest.raises(TrainError, match="--n=501: larger than the train pool of 500"):
        RealSampler(500, 501, 0)


class _Store:
    """Stands in for TrainStore: 'images' are the global indices themselves."""

    def gather(self, indices):
        t = torch.as_tensor(np.asarray(indices))
        return t, t


@pytest.mark.parametrize("sampler", [RealSampler(300, 40, 0), IdealSampler(300, 0)])
def test_ranks_split_the_global_batch_exactly(sampler):
    world, batch = 3, 12
    sources = [
        MemorySource(sampler, _Store(), batch, ddp.Dist(rank=r, world=world), eval_count=10) for r in range(world)
    ]
    for step in (0, 4, 9):
        parts = [s.batch(step)[2] for s in sources]
        assert all(len(p) == batch // world for p in parts)
        assert np.array_equal(np.concatenate(parts), sampler.indices(step, batch))
    # train-eval shares: round-robin, together the fixed first samples
    shares = [s.train_eval(100)[0] for s in sources]
    assert sorted(torch.cat(shares).tolist()) == sorted(sampler.first_samples(10).tolist())
    ideal_seen = [len(s.train_eval(0)[0]) for s in sources]
    assert sum(ideal_seen) == (10 if sampler.kind == "real" else 0)
