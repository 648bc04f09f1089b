"""Two ranks with gloo on CPU under torchrun: the Real and Ideal semantics hold over the global batch."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from train_fixtures import build_dataset, run_torchrun

from train.core.config import RunConfig
from train.run.loop import run_training

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from train.core.config import RunConfig
    from train.run.loop import run_training
    for kw in {configs}:
        run_training(RunConfig(**kw), progress=False)
""")


def _configs(ds: Path, out: Path) -> list[dict]:
    base = dict(
        data=str(ds),
        n=100,
        steps=12,
        batch_size=16,
        model="mlp",
        mlp_widths=(16,),
        device="cpu",
        eval_schedule="every:6",
        eval_train_samples=32,
        checkpoint_every_steps=6,
    )
    return [dict(base, mode=mode, out_dir=str(out / mode)) for mode in ("real", "ideal")]


@pytest.mark.slow
def test_two_gloo_ranks_keep_real_and_ideal_semantics(tmp_path):
    ds = build_dataset(tmp_path / "ds", train=192, test=40, per_shard=48)
    script = tmp_path / "ddp_runs.py"
    script.write_text(SCRIPT.format(configs=_configs(ds, tmp_path / "ddp")))
    run_torchrun(script, tmp_path)
    for cfg in _configs(ds, tmp_path / "single"):
        run_training(RunConfig(**cfg), progress=False)
    for mode in ("real", "ideal"):
        ddp = json.loads((tmp_path / "ddp" / mode / "summary.json").read_text())
        one = json.loads((tmp_path / "single" / mode / "summary.json").read_text())
        assert ddp["world_size"] == 2 and ddp["steps_done"] == 12
        # mlp has BatchNorm: SyncBatchNorm needs CUDA, so on gloo the summary says it was per rank
        assert (ddp["batchnorm"], one["batchnorm"]) == ("per-rank", "single")
        # The same global stream of samples as one device: identical ledgers, sample by sample.
        assert ddp["ledger"] == one["ledger"]
        counts = [
            torch.load(p / mode / "checkpoints" / "last.pt", weights_only=True)["ledger"]
            for p in (tmp_path / "ddp", tmp_path / "single")
        ]
        assert torch.equal(*counts)
        rows = [json.loads(line) for line in (tmp_path / "ddp" / mode / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [0, 6, 12] and rows[-1]["test/error"] is not None
    assert json.loads((tmp_path / "ddp" / "ideal" / "summary.json").read_text())["ledger"]["no_reuse"]
    real = json.loads((tmp_path / "ddp" / "real" / "summary.json").read_text())["ledger"]
    assert real["within_subset"] and real["unique_samples"] == 100
