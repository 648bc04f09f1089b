"""Whole runs on a tiny dataset on CPU: outputs, T(n), determinism, resume, run-folder rules, bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import build_dataset, copy_dataset, killed_run, label_of, relabel_dataset, sample_image

import shards
from shards.cachedir import CACHE_ENV
from train.core.config import RunConfig
from train.errors import TrainError
from train.run import loop
from train.run.loop import run_training

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("wall_s", "img_per_s")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("data") / "ds", train=400, test=100)


def make_cfg(ds: Path, out: Path, **kw) -> RunConfig:
    base = dict(
        data=str(ds),
        mode="real",
        n=200,
        steps=60,
        batch_size=16,
        model="mlp",
        mlp_widths=(32,),
        lr=0.05,
        device="cpu",
        out_dir=str(out),
        eval_schedule="every:10",
        eval_train_samples=64,
        checkpoint_every_steps=20,
    )
    return RunConfig(**{**base, **kw})


def rows_of(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_real_run_writes_its_folder_and_finds_t_n(dataset, tmp_path):
    cfg = make_cfg(dataset, tmp_path / "run")
    summary = run_training(cfg, progress=False)
    out = Path(cfg.out_dir)
    data_hash = shards.load_manifest(cfg.data).data_sha256()[:16]  # which data, by content, the run read
    recorded = {**cfg.to_dict(), "data_hashes": [data_hash], "data_path": "memory"}  # auto, recorded resolved
    assert json.loads((out / "config.json").read_text()) == recorded
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    rows = rows_of(out)
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40, 50, 60]
    assert list(rows[1])[:5] == ["step", "epoch", "samples_seen", "lr", "test/error"]
    assert {"test/soft_error", "test/loss", "train/error", "train/soft_error", "train/loss"} <= set(rows[1])
    assert rows[1]["samples_seen"] == 160 and rows[1]["epoch"] == pytest.approx(0.8)
    fit = next(r["step"] for r in rows if r["train/error"] <= 0.01)
    assert summary["fit_step"] == fit and summary["at_fit"]["step"] == fit and fit < 60
    assert summary["final"]["step"] == 60 and summary["final"]["train/error"] <= 0.01
    assert summary["final"]["test/error"] < 0.1  # the templates generalise
    ledger = summary["ledger"]
    assert ledger["within_subset"] and ledger["total_draws"] == 60 * 16 and ledger["unique_samples"] == 200
    assert ledger["passes"] == pytest.approx(4.8) and len(ledger["subset_hash"]) == 16
    assert (summary["mode"], summary["n"], summary["steps_done"], summary["batch_size"]) == ("real", 200, 60, 16)
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)  # plain tensors, no pickled module
    assert state["step"] == 60 and state["config"] == recorded and int(state["ledger"].sum()) == 960
    assert {"model", "optimizer", "sampler", "rng"} <= set(state)


def test_train_metrics_on_augmented_images_unless_asked(dataset, tmp_path):
    kw = dict(steps=10, aug="crop-flip", crop_padding=2, eval_schedule="every:10", model="mcnn", width=4)
    paper = run_training(make_cfg(dataset, tmp_path / "aug", **kw), progress=False)
    plain = run_training(make_cfg(dataset, tmp_path / "plain", eval_train_aug=False, **kw), progress=False)
    a, b = paper["final"], plain["final"]
    assert a["test/soft_error"] == b["test/soft_error"]  # the same training, the same test images
    assert a["train/soft_error"] != b["train/soft_error"]  # the train images scored through the augmentation
    again = run_training(make_cfg(dataset, tmp_path / "again", **kw), progress=False)["final"]
    assert again["train/soft_error"] == a["train/soft_error"]  # its draws are seeded by the step
    assert paper["batchnorm"] == "single"  # mcnn has BatchNorm; one process, nothing to sync


def test_same_seed_same_metrics(dataset, tmp_path):
    a = run_training(make_cfg(dataset, tmp_path / "a", steps=30, aug="crop-flip", crop_padding=1), progress=False)
    b = run_training(make_cfg(dataset, tmp_path / "b", steps=30, aug="crop-flip", crop_padding=1), progress=False)
    c = run_training(
        make_cfg(dataset, tmp_path / "c", steps=30, aug="crop-flip", crop_padding=1, seed=1), progress=False
    )
    assert rows_of(tmp_path / "a") == rows_of(tmp_path / "b")
    assert a["ledger"] == b["ledger"] and c["ledger"]["subset_hash"] != a["ledger"]["subset_hash"]
    assert rows_of(tmp_path / "c") != rows_of(tmp_path / "a")


def test_resume_matches_an_uninterrupted_run(dataset, tmp_path, monkeypatch):
    kw = dict(model="mcnn", width=4, aug="flip", momentum=0.9, eval_schedule="every:10+steps:42")
    whole = run_training(make_cfg(dataset, tmp_path / "whole", **kw), progress=False)
    cfg = make_cfg(dataset, tmp_path / "killed", **kw)
    killed_run(cfg, monkeypatch, at=45)
    assert [r["step"] for r in rows_of(Path(cfg.out_dir))][-1] == 42  # logged after the checkpoint at 40
    with pytest.raises(TrainError, match="unfinished run of this config; pass --resume"):
        run_training(cfg, progress=False)
    resumed = run_training(cfg, resume=True, progress=False)
    assert rows_of(Path(cfg.out_dir)) == rows_of(tmp_path / "whole")
    assert resumed["ledger"] == whole["ledger"] and resumed["fit_step"] == whole["fit_step"]


def test_run_folder_rules(dataset, tmp_path):
    cfg = make_cfg(dataset, tmp_path / "run", steps=10)
    first = run_training(cfg, progress=False)
    mtime = (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns
    assert run_training(cfg, progress=False) == first  # finished: returned at once
    assert (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns == mtime
    other = dataclasses.replace(cfg, lr=0.01)
    with pytest.raises(TrainError, match=r"holds a run with another config \(lr: 0.05 -> 0.01\); .*--overwrite"):
        run_training(other, progress=False)
    assert run_training(other, overwrite=True, progress=False)["final"]["lr"] != first["final"]["lr"]


def test_ideal_run_never_reuses_and_evaluates_extra_sets(dataset, tmp_path):
    extra = build_dataset(tmp_path / "cifar-like", splits={"train": 30})  # no test split: its only split
    cfg = make_cfg(
        dataset, tmp_path / "ideal", mode="ideal", n=None, steps=25, extra_test=(str(extra), f"named={dataset}")
    )
    summary = run_training(cfg, progress=False)
    assert summary["ledger"] == {
        "unique_samples": 400,
        "total_draws": 400,
        "pool_size": 400,
        "max_uses": 1,
        "no_reuse": True,
        "passes": 1.0,
    }
    assert summary["n"] is None and summary["mode"] == "ideal"
    rows = [json.loads(line) for line in (tmp_path / "ideal" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train/error"] is None  # nothing seen yet at step 0
    assert {"cifar-like/error", "cifar-like/soft_error", "cifar-like/loss", "named/error"} <= set(rows[-1])
    assert rows[-1]["named/error"] == rows[-1]["test/error"]  # the same test split, evaluated twice


def test_stop_at_fit(dataset, tmp_path):
    summary = run_training(
        make_cfg(dataset, tmp_path / "s", steps=200, stop_at_fit=True, eval_schedule="every:5"), progress=False
    )
    assert summary["stopped_at_fit"] and summary["steps_done"] == summary["fit_step"] < 200
    assert summary["final"]["step"] == summary["fit_step"]


def test_streaming_real_matches_the_fast_path_and_ideal_streams_once(dataset, tmp_path):
    memory = run_training(make_cfg(dataset, tmp_path / "m", steps=20, data_path="memory"), progress=False)
    stream = run_training(make_cfg(dataset, tmp_path / "s", steps=20, data_path="stream"), progress=False)
    assert rows_of(tmp_path / "m") == rows_of(tmp_path / "s") and memory["ledger"] == stream["ledger"]
    ideal = run_training(
        make_cfg(dataset, tmp_path / "i", mode="ideal", steps=25, data_path="stream", num_workers=2), progress=False
    )
    assert ideal["ledger"]["no_reuse"] and ideal["ledger"]["unique_samples"] == 400


def _corrupt(ds: Path) -> None:
    shard = ds / "data" / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such dataset folder"),
        ("no-manifest", "no manifest.json, so the dataset is incomplete"),
        ("corrupt", "data/train-000001.tar: corrupt: sha256"),
        ("n-too-big", "--n=401: larger than the train pool of 400 samples"),
        ("ideal-too-long", "draws exceed the train pool of 400 samples"),
        ("channels", "3-channel images, the train set has 1"),
        ("model", "--model=resnet7: unknown model; known:"),
    ],
)
def test_bad_inputs_give_clear_errors(dataset, tmp_path, monkeypatch, case, message):
    ds = dataset
    kw = {}
    if case == "missing":
        ds = tmp_path / "nowhere"
    elif case in ("no-manifest", "corrupt"):
        # The decoded cache is keyed by the manifest: the copy gets a cache of its own, so its shards are read.
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
        ds = copy_dataset(dataset, tmp_path / "copy")
        (ds / "manifest.json").unlink() if case == "no-manifest" else _corrupt(ds)
    elif case == "n-too-big":
        kw = dict(n=401)
    elif case == "ideal-too-long":
        kw = dict(mode="ideal", steps=26)
    elif case == "channels":
        kw = dict(extra_test=(str(build_dataset(tmp_path / "rgb", train=10, test=10, channels=3)),))
    else:
        kw = dict(model="resnet7")
    with pytest.raises(TrainError, match=message.replace("(", r"\(")):
        run_training(make_cfg(ds, tmp_path / "run", **kw), progress=False)


def test_cli_prints_one_line_and_exits_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "train",
            "run",
            "--data",
            str(tmp_path / "nowhere"),
            "--n",
            "5",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nowhere'}: no such dataset folder; give "
        "a dataset folder, http(s):// URL or hf://datasets/ORG/NAME"
    )
    assert not (tmp_path / "o").exists()  # nothing written for a run that never started


def test_streaming_ideal_resumes_like_an_uninterrupted_run(dataset, tmp_path, monkeypatch):
    kw = dict(
        mode="ideal", steps=24, data_path="stream", num_workers=2, checkpoint_every_steps=8, eval_schedule="every:4"
    )
    run_training(make_cfg(dataset, tmp_path / "whole", **kw), progress=False)
    cfg = make_cfg(dataset, tmp_path / "killed", **kw)
    step_once = loop.Trainer.train_step

    def killed_at_13(self, model):
        if self.step == 13:
            raise KeyboardInterrupt
        step_once(self, model)

    monkeypatch.setattr(loop.Trainer, "train_step", killed_at_13)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, progress=False)
    monkeypatch.undo()
    resumed = run_training(cfg, resume=True, progress=False)
    assert rows_of(Path(cfg.out_dir)) == rows_of(tmp_path / "whole")
    assert resumed["ledger"]["no_reuse"] and resumed["ledger"]["unique_samples"] == 24 * 16


def test_a_dataset_regenerated_at_the_same_path_is_not_mistaken_for_the_old_one(tmp_path):
    ds = build_dataset(tmp_path / "ds", train=200, test=50)
    cfg = make_cfg(ds, tmp_path / "run", steps=10, eval_schedule="every:5")
    run_training(cfg, progress=False)
    assert run_training(cfg, progress=False)["steps_done"] == 10  # same data: the finished run is reused
    shutil.rmtree(ds)
    build_dataset(ds, train=300, test=50)  # other settings, same folder
    with pytest.raises(TrainError, match="holds a run trained on other data"):
        run_training(cfg, progress=False)


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path, monkeypatch):
    ds = build_dataset(tmp_path / "ds", train=200, test=50)
    cfg = make_cfg(ds, tmp_path / "run", steps=40, eval_schedule="every:10")
    out = killed_run(cfg, monkeypatch, at=25)
    assert (out / "checkpoints" / "last.pt").is_file()
    relabel_dataset(ds)
    with pytest.raises(TrainError, match="holds a run trained on other data"):
        run_training(cfg, resume=True, progress=False)


def test_a_dataset_rebuilt_with_other_bytes_under_the_same_config_is_other_data(tmp_path):
    ds = build_dataset(tmp_path / "ds", train=200, test=50)
    cfg = make_cfg(ds, tmp_path / "run", steps=10, eval_schedule="every:5")
    first = run_training(cfg, progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["data_hashes"]
    assert recorded == [shards.load_manifest(ds).data_sha256()[:16]]
    config_hash = shards.load_manifest(ds).config_hash
    assert relabel_dataset(ds).config_hash == config_hash  # the same config: only the content tells them apart
    with pytest.raises(TrainError, match=r"holds a run trained on other data \(content hashes .*--overwrite"):
        run_training(cfg, progress=False)  # not the old "finished" summary
    again = run_training(cfg, overwrite=True, progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_hashes"] != recorded
    assert again["final"]["test/error"] != first["final"]["test/error"]  # trained on the new labels


def test_fixture_dataset_reads_back(tmp_path):
    root = build_dataset(tmp_path / "ds", train=120, test=30, per_shard=50)
    manifest = shards.load_manifest(root)
    assert manifest.splits["train"].count == 120 and len(manifest.splits["train"].shards) == 3
    arrays = shards.load_split(root, "train", progress=False)
    assert arrays.images.shape == (120, 8, 8, 1)
    assert [int(v) for v in arrays.labels[:4]] == [label_of(i, "train") for i in range(4)]
    assert np.array_equal(arrays.images[17], sample_image(17, "train"))


def test_resume_after_a_kill_cut_the_last_metrics_line(dataset, tmp_path, monkeypatch):
    """A kill mid-append leaves half a row at the end of metrics.jsonl: --resume drops it and carries on."""
    whole = run_training(make_cfg(dataset, tmp_path / "whole"), progress=False)
    cfg = make_cfg(dataset, tmp_path / "killed")
    killed_run(cfg, monkeypatch, at=45)
    metrics = Path(cfg.out_dir) / "metrics.jsonl"
    text = metrics.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    assert json.loads(last)["step"] == 40  # the row logged just before the checkpoint at step 40
    metrics.write_text(text[: len(text) - 1 - len(last) // 2])  # half the last row, no newline
    with pytest.raises(json.JSONDecodeError):
        json.loads(metrics.read_text().rsplit("\n", 1)[1])
    resumed = run_training(cfg, resume=True, progress=False)
    assert rows_of(Path(cfg.out_dir)) == rows_of(tmp_path / "whole")
    assert resumed["ledger"] == whole["ledger"] and resumed["fit_step"] == whole["fit_step"]
