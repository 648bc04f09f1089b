"""--log-to: a finished run's config, every evaluation's metrics at its step and T(n) reach W&B (offline),
TensorBoard and MLflow (a local file store), read back with each tracker's own reader; no network."""

import json
import os
from pathlib import Path

import pytest
from train_fixtures import build_dataset

from train.__main__ import main
from train.errors import TrainError
from train.run import runfolder
from train.run.tracking import parse_trackers


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("track") / "data", train=64, test=32, per_shard=16)


def train_run(data: Path, out: Path, trackers: str) -> list[dict]:
    args = [
        "run",
        "--data",
        str(data),
        "--mode",
        "real",
        "--n",
        "32",
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--model",
        "mlp",
        "--mlp-widths",
        "16",
        "--eval-schedule",
        "every:2",
        "--eval-train-samples",
        "32",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--no-progress",
        "--out",
        str(out),
        "--log-to",
        trackers,
    ]
    assert main(args) == 0
    rows = runfolder.read_metrics(out)
    assert [r["step"] for r in rows] == [0, 2, 4, 6]
    return rows


def test_tensorboard_gets_every_evaluation(data, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install '.[tracking]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = train_run(data, tmp_path / "run", "tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("test/soft_error")]
    assert logged == [(r["step"], pytest.approx(r["test/soft_error"])) for r in rows]
    assert "summary/final/test/error" in events.Tags()["scalars"]


def test_mlflow_file_store_gets_config_metrics_and_fit_step(data, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install '.[tracking]')")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # also set by the export: restored afterwards
    rows = train_run(data, tmp_path / "run", "mlflow")
    client = MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").resolve().as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("deep-bootstrap").experiment_id])
    history = client.get_metric_history(run.info.run_id, "test/error")
    assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r["test/error"])) for r in rows]
    assert run.data.params["model"] == "mlp" and run.data.params["n"] == "32"
    assert run.info.run_name == "run"


def wandb_records(path: Path):
    """The protobuf records of a .wandb file: a 7-byte header, then LevelDB-log records (crc32 u32, length
    u16, type u8: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks; wandb >= 0.20 has no Python reader."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, part = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        part, pos = part + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            yield record
            part = b""
        elif kind == 0:
            break


def test_wandb_offline_run_gets_config_and_metrics(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install '.[tracking]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    rows = train_run(data, tmp_path / "run", "wandb")
    [offline] = list((tmp_path / "run" / "wandb").glob("offline-run-*/*.wandb"))
    history, config = [], {}
    for record in wandb_records(offline):
        if record.WhichOneof("record_type") == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif record.WhichOneof("record_type") == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
    steps = [(h["_step"], h["test/soft_error"]) for h in history if "test/soft_error" in h]
    assert steps == [(r["step"], pytest.approx(r["test/soft_error"])) for r in rows]
    assert config["model"] == "mlp" and config["n"] == 32


def test_unknown_tracker_is_one_clear_line():
    with pytest.raises(TrainError, match="--log-to 'neptune': choose from wandb, tensorboard, mlflow"):
        parse_trackers("neptune")
    assert parse_trackers("wandb, mlflow,wandb") == ("wandb", "mlflow")


def test_the_run_folder_stays_the_record(data, tmp_path, monkeypatch):
    """A tracker that is missing fails after the run with one line; metrics.jsonl and summary.json are there."""
    import builtins

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kw):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("no mlflow", name="mlflow")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(data),
        "--mode",
        "real",
        "--n",
        "32",
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--model",
        "mlp",
        "--mlp-widths",
        "16",
        "--eval-schedule",
        "every:2",
        "--eval-train-samples",
        "32",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--no-progress",
        "--out",
        str(out),
        "--log-to",
        "mlflow",
    ]
    assert main(args) == 2
    assert runfolder.is_finished(out) and len(runfolder.read_metrics(out)) == 2
    assert os.path.isfile(out / "summary.json")


def test_bootstrap_logs_both_worlds(data, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install '.[tracking]')")
    exp = tmp_path / "boot"
    assert (
        main(
            [
                "bootstrap",
                "--data",
                str(data),
                "--n",
                "32",
                "--steps",
                "4",
                "--batch-size",
                "8",
                "--model",
                "mlp",
                "--mlp-widths",
                "16",
                "--eval-schedule",
                "every:2",
                "--eval-train-samples",
                "32",
                "--device",
                "cpu",
                "--num-workers",
                "0",
                "--no-progress",
                "--out",
                str(exp),
                "--log-to",
                "tensorboard",
            ]
        )
        == 0
    )
    for world in ("real", "ideal"):
        assert list((exp / world / "tensorboard").glob("events.out.tfevents.*")), world
