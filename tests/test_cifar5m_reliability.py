"""`generate` as an adversary or a careless user would drive it: a folder of the user's files, two
processes on one shard, a run that died loading its models, leftovers in data/. Each test reproduces one
case of RELIABILITY.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cifar5m.cli import main
from shards.verify import verify_dataset

ROOT = Path(__file__).resolve().parents[1]


def generate(out: Path, pipeline: Path, labeler: Path, *extra: str) -> int:
    return main(
        [
            "generate",
            "--model",
            str(pipeline),
            "--labeler",
            f"local-dir:{labeler}",
            "--out",
            str(out),
            "--train",
            "20",
            "--test",
            "0",
            "--shard-size",
            "10",
            "--min-shards",
            "1",
            "--batch-size",
            "10",
            *extra,
        ]
    )


def test_a_hf_style_folder_of_the_users_is_never_wiped(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    out = tmp_path / "theirs"
    (out / "data").mkdir(parents=True)
    (out / "README.md").write_text("my dataset card")
    (out / "data" / "train-000000.tar").write_bytes(b"my shard")
    assert generate(out, tiny_pipeline, tiny_labeler, "--overwrite") == 2
    err = capsys.readouterr().err
    assert (
        "not empty and not a dataset folder made by this toolkit (found README.md, data; no "
        ".shards/created.json); its files are never replaced, even with --overwrite" in err
    )
    assert (out / "README.md").read_text() == "my dataset card"
    assert (out / "data" / "train-000000.tar").read_bytes() == b"my shard"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]  # nothing added either


def test_a_second_process_on_a_shard_is_refused_and_disjoint_ranges_run(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    out = tmp_path / "shared"
    assert generate(out, tiny_pipeline, tiny_labeler, "--shards", "1:2") == 0  # another range: runs
    tmp = out / ".shards" / "tmp" / "train-000000.otherhost-4242.tar"
    tmp.write_bytes(b"the other process's shard, half written")
    lock = out / ".shards" / "locks" / "train-000000.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from shards.lock import hold_lock; "
            f"hold_lock({str(lock)!r}, 'x'); print('held', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert generate(out, tiny_pipeline, tiny_labeler) == 2
        assert f"data/train-000000.tar: in use by pid {holder.pid} " in capsys.readouterr().err
        assert tmp.read_bytes() == b"the other process's shard, half written"  # not deleted under its writer
    finally:
        holder.kill()
        holder.wait()
    assert generate(out, tiny_pipeline, tiny_labeler) == 0  # the holder died: its lock went with it
    assert not tmp.exists() and verify_dataset(out).ok


def test_a_run_that_died_loading_its_model_does_not_block_the_corrected_one(
    tmp_path, tiny_pipeline, tiny_labeler, capsys
):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_pipeline, broken)
    for weights in (broken / "unet").glob("diffusion_pytorch_model.*"):
        weights.write_bytes(b"not weights")
    out = tmp_path / "out"
    assert generate(out, broken, tiny_labeler) == 2
    assert "cannot load unet weights" in capsys.readouterr().err
    assert not (out / ".shards" / "config.json").exists()  # nothing was made: no config to conflict with
    assert generate(out, tiny_pipeline, tiny_labeler) == 0  # another model, same folder, no --overwrite
    assert (
        json.loads((out / ".shards" / "config.json").read_text())["config"]["generator"]["model"] == tiny_pipeline.name
    )
    assert verify_dataset(out).ok


def test_after_a_repair_leftovers_are_removed_or_named_not_called_complete(
    tmp_path, tiny_pipeline, tiny_labeler, capsys
):
    out = tmp_path / "out"
    assert generate(out, tiny_pipeline, tiny_labeler) == 0
    shutil.copy(out / "data" / "train-000000.tar", out / "data" / "train-000007.tar")  # shard-named: ours
    shutil.copy(out / "data" / "train-000000.tar", out / "data" / "train-000000.tar.bak")  # the user's copy
    (out / "data" / "train-000001.tar").write_bytes(b"damaged")  # the repair: this shard is made again
    capsys.readouterr()
    assert generate(out, tiny_pipeline, tiny_labeler) == 2
    captured = capsys.readouterr()
    assert "complete:" not in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        f"error: {out}/manifest.json written, but data/ also holds 1 file(s) that are not this dataset's shards "
        "(data/train-000000.tar.bak); `python -m shards verify` flags them: move them out of data/"
    )
    assert not (out / "data" / "train-000007.tar").exists()
    assert [p for p in verify_dataset(out).problems] == ["data/train-000000.tar.bak: extra file, not in the manifest"]
    (out / "data" / "train-000000.tar.bak").unlink()
    assert generate(out, tiny_pipeline, tiny_labeler) == 0 and "complete:" in capsys.readouterr().out
    assert verify_dataset(out).ok


def test_a_scheduler_config_that_is_not_an_object_is_one_line(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline, model)
    (model / "scheduler" / "scheduler_config.json").write_text("[1, 2, 3]")
    assert generate(tmp_path / "out", model, tiny_labeler) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {model.resolve()}/scheduler/scheduler_config.json: a JSON list, not an object of settings "
        "(diffusers writes one with _class_name and the model's settings); re-download or re-save the model"
    )
    assert not (tmp_path / "out").exists()


def test_overwrite_never_wipes_a_folder_another_driver_is_using(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    out = tmp_path / "out"
    assert generate(out, tiny_pipeline, tiny_labeler, "--shards", "0:1") == 0
    lock = out / ".shards" / "locks" / "folder.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from shards.lock import hold_lock; "
            f"hold_lock({str(lock)!r}, 'x', shared=True); print('held', flush=True); "
            "time.sleep(60)",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert generate(out, tiny_pipeline, tiny_labeler, "--seed", "7", "--overwrite") == 2
        assert f"dataset folder {out}: in use by pid {holder.pid} " in capsys.readouterr().err
        assert (out / "data" / "train-000000.tar").is_file()  # the other driver's shards are kept
        assert generate(out, tiny_pipeline, tiny_labeler, "--shards", "1:2") == 0  # a disjoint range still runs
    finally:
        holder.kill()
        holder.wait()
