"""`--data-path auto` decided from available memory and recorded, never switched on resume; the Ideal World's
"never reuses a sample" is an invariant that ends the run with an error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import build_dataset, killed_run, tiny_cfg

import train.__main__
from train.core.samplers import IdealSampler, Ledger
from train.data import sources
from train.data.datasets import TrainStore, host_budget_bytes
from train.errors import TrainError
from train.run import runfolder
from train.run.loop import run_training

GB = 10**9


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("data") / "ds", train=200, test=50)


def ideal_cfg(ds: Path, out: Path, **kw):
    return tiny_cfg(
        ds,
        out,
        mode="ideal",
        steps=12,
        batch_size=10,
        eval_schedule="every:4",
        eval_train_samples=20,
        checkpoint_every_steps=4,
        **kw,
    )


def test_auto_counts_the_page_cache_as_available(tmp_path):
    meminfo = tmp_path / "meminfo"  # what the issue saw: 4.6 GB free, 23.9 GB available
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:         4600000 kB\nMemAvailable:   23900000 kB\n")
    assert host_budget_bytes(str(meminfo)) == int(0.8 * 23_900_000 * 1024)


def _budget(monkeypatch, nbytes: int) -> None:
    monkeypatch.setattr(sources, "host_budget_bytes", lambda: nbytes)


def test_auto_is_recorded_and_a_resume_never_switches_path(dataset, tmp_path, monkeypatch):
    cfg = ideal_cfg(dataset, tmp_path / "run")
    _budget(monkeypatch, 1000)  # the 200 x 8 x 8 pool (12,800 bytes) fits nowhere: auto streams
    killed_run(cfg, monkeypatch, at=6)
    _budget(monkeypatch, 8 * GB)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["data_path"] == "stream"
    with pytest.raises(
        TrainError,
        match=r"holds a run with another config \(data_path: 'stream' -> 'memory' \(a run "
        r"never switches path: pass --data-path stream to go on with it\)\)",
    ):
        run_training(cfg, resume=True, progress=False)
    summary = run_training(ideal_cfg(dataset, tmp_path / "run", data_path="stream"), resume=True, progress=False)
    assert summary["steps_done"] == 12 and summary["ledger"]["no_reuse"]
    assert summary["ledger"]["total_draws"] == 120 == summary["ledger"]["unique_samples"]


def test_two_runs_of_one_auto_config_are_told_apart_by_their_path(dataset, tmp_path, monkeypatch):
    _budget(monkeypatch, 8 * GB)
    roomy = run_training(ideal_cfg(dataset, tmp_path / "a"), progress=False)
    _budget(monkeypatch, 1000)
    tight = run_training(ideal_cfg(dataset, tmp_path / "b"), progress=False)
    paths = [json.loads((tmp_path / d / "config.json").read_text())["data_path"] for d in "ab"]
    assert paths == ["memory", "stream"] and roomy["config_hash"] != tight["config_hash"]


def test_an_ideal_draw_of_a_sample_seen_before_ends_the_run_with_exit_2(dataset, tmp_path, monkeypatch, capsys):
    drawn = IdealSampler.indices

    def repeats(self, step, batch_size):  # a sampler that goes wrong at step 5: it draws step 0's batch again
        return drawn(self, 0 if step == 5 else step, batch_size)

    monkeypatch.setattr(IdealSampler, "indices", repeats)
    out = tmp_path / "run"
    code = train.__main__.main(
        [
            "run",
            "--data",
            str(dataset),
            "--mode",
            "ideal",
            "--steps",
            "12",
            "--batch-size",
            "10",
            "--model",
            "mlp",
            "--mlp-widths",
            "16",
            "--device",
            "cpu",
            "--eval-schedule",
            "every:4",
            "--eval-train-samples",
            "20",
            "--num-workers",
            "0",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: the Ideal World drew pool sample ")
    assert "2 times (and 9 other samples more than once): it never reuses a sample" in err[-1]
    assert not (out / "summary.json").exists()


def test_a_checkpoint_whose_ledger_shows_reuse_is_not_resumed(dataset, tmp_path, monkeypatch):
    cfg = ideal_cfg(dataset, tmp_path / "run", data_path="memory")
    killed_run(cfg, monkeypatch, at=6)
    state = runfolder.load_checkpoint(cfg.out_dir)  # step 4's checkpoint, its ledger doubled (two paths' draws)
    state["ledger"] = state["ledger"] * 2
    runfolder.save_checkpoint(cfg.out_dir, state)
    with pytest.raises(TrainError, match=r"drew pool sample [0-9,]+ 2 times \(and 39 other samples"):
        run_training(cfg, resume=True, progress=False)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_the_ledger_allows_reuse_only_when_asked():
    ledger = Ledger(10)
    ledger.record(np.array([1, 1, 2]))
    assert ledger.summary(None, None)["no_reuse"] is False
    once = Ledger(10, once=True)
    once.record(np.array([3, 4]))
    with pytest.raises(TrainError, match="drew pool sample 4 2 times"):
        once.record(np.array([5, 4]))
    with pytest.raises(TrainError, match="drew pool sample 7 3 times"):
        Ledger(10, np.array([0, 0, 0, 0, 0, 0, 0, 3, 0, 0]), once=True)


@pytest.mark.parametrize("rows", [None, np.array([1, 4, 7])])
def test_a_cpu_store_over_the_memory_mapped_cache_gathers_the_rows_asked_for(tmp_path, rows):
    """A CPU run over a whole cached pool gathers from the mapped file itself (no second copy); a subset is copied."""
    images = np.random.default_rng(0).integers(0, 256, (9, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    store = TrainStore.build(mapped, np.arange(9) % 3, torch.device("cpu"), rows=rows)
    wanted = np.array([7, 1, 4])
    x, y = store.gather(wanted)
    assert np.array_equal(x.numpy(), images[wanted]) and y.tolist() == (wanted % 3).tolist()
    assert np.array_equal(np.load(tmp_path / "images.npy"), images)  # the cache file is never written
