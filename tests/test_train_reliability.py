"""The trainer as an adversary or a careless user would drive it: foreign and busy run folders, damaged
checkpoints, lost metrics, bad shards in the cache, bad devices, Ctrl-C. Each test reproduces one case of
RELIABILITY.md."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
from train_fixtures import build_dataset, copy_dataset, killed_run

from shards.cachedir import CACHE_ENV
from shards.tario import tar_end, tar_member
from train.core.config import RunConfig
from train.errors import TrainError
from train.run import loop, runfolder
from train.run.loop import run_training

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("data") / "ds", train=200, test=50)


def make_cfg(ds: Path, out: Path, **kw) -> RunConfig:
    base = dict(
        data=str(ds),
        mode="real",
        n=100,
        steps=30,
        batch_size=16,
        model="mlp",
        mlp_widths=(16,),
        lr=0.05,
        device="cpu",
        out_dir=str(out),
        eval_schedule="every:10",
        eval_train_samples=32,
        checkpoint_every_steps=10,
    )
    return RunConfig(**{**base, **kw})


def rows_of(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_s", "img_per_s")} for r in rows]


# --- run folders: ours, busy, writable --------------------------------------------------------------------
def test_a_folder_of_the_users_files_is_refused_and_overwrite_keeps_them(dataset, tmp_path):
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes")
    (out / "checkpoints" / "mine.pt").write_bytes(b"my weights")
    (out / "metrics.jsonl").write_text('{"mine": 1}\n')
    cfg = make_cfg(dataset, out, steps=10)
    with pytest.raises(
        TrainError,
        match=r"not empty and not a run folder of this toolkit \(found checkpoints, "
        r"metrics.jsonl, notes.txt\); .*--overwrite",
    ):
        run_training(cfg, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "metrics.jsonl", "notes.txt"]  # untouched
    run_training(cfg, overwrite=True, progress=False)
    assert (out / "notes.txt").read_text() == "my notes"  # --overwrite replaced only the run's own files
    assert (out / "checkpoints" / "mine.pt").read_bytes() == b"my weights"
    assert (out / ".train-run").is_file() and (out / "summary.json").is_file()
    assert '"mine"' not in (out / "metrics.jsonl").read_text()
    assert run_training(cfg, progress=False)["steps_done"] == 10  # now ours: finished, returned at once


def test_a_second_process_on_the_folder_is_told_who_holds_it(dataset, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / ".train-run").write_text("{}")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from shards.lock import hold_lock; "
            f"hold_lock({str(out / '.train-run.lock')!r}, 'x'); print('held', flush=True); "
            "time.sleep(60)",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TrainError, match=f"run folder {out}: in use by pid {holder.pid} "):
            run_training(make_cfg(dataset, out, steps=10), progress=False)
        assert not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run_training(make_cfg(dataset, out, steps=10), progress=False)["steps_done"] == 10  # freed by death


def test_out_that_is_a_file_or_cannot_be_written_fails_before_the_data_loads(dataset, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the run folder was checked")

    monkeypatch.setattr(loop, "build_run_data", no_data)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainError, match=r"--out=.*file: exists and is not a folder; choose another --out"):
        run_training(make_cfg(dataset, tmp_path / "file"), progress=False)
    with pytest.raises(TrainError, match=r"--out=.*file/run: cannot write there \(Not a directory\)"):
        run_training(make_cfg(dataset, tmp_path / "file" / "run"), progress=False)
    real_open = os.open

    def read_only(path, *args, **kwargs):  # as a chmod 555 folder behaves for a non-root user
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(TrainError, match=r"--out=.*ro: cannot write there \(Permission denied\)"):
        run_training(make_cfg(dataset, tmp_path / "ro"), progress=False)


# --- checkpoints ------------------------------------------------------------------------------------------
def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flipped":
        data[len(data) // 2] ^= 0x01
        data[len(data) // 3] ^= 0x80
    path.write_bytes(b"" if how == "empty" else bytes(data) if how == "flipped" else random.Random(0).randbytes(4096))


def _record(path: Path) -> None:
    """Make the checksum file agree with the (damaged) checkpoint: the file's content is then what is tested."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")


@pytest.mark.parametrize(
    "how, resealed, message",
    [
        (
            "flipped",
            False,
            r"last.pt: sha256 \w{12}\.\.\. differs from the recorded \w{12}\.\.\. \(the file was changed",
        ),
        ("empty", False, r"last.pt: sha256 \w{12}\.\.\. differs from the recorded"),
        ("random", True, r"last.pt: unreadable checkpoint"),
        ("empty", True, r"last.pt: unreadable checkpoint"),
        (
            "shapes",
            True,
            r"its checkpoint does not fit this run's model or optimizer \(RuntimeError: Error\(s\) in "
            r"loading state_dict",
        ),
        ("no-checksum", False, r"last.pt.sha256: missing or empty, so .*last.pt cannot be checked"),
    ],
)
def test_a_damaged_checkpoint_is_refused_with_one_line(dataset, tmp_path, monkeypatch, how, resealed, message):
    cfg = make_cfg(dataset, tmp_path / "run")
    ckpt = killed_run(cfg, monkeypatch, at=25) / "checkpoints" / "last.pt"
    lines = (ckpt.parent / "last.pt.sha256").read_text().splitlines()
    assert lines == [f"{hashlib.sha256(ckpt.read_bytes()).hexdigest()}  last.pt"]  # `sha256sum -c` format
    if how == "shapes":
        state = torch.load(ckpt, weights_only=True)
        state["model"] = {k: torch.zeros(3, *v.shape) for k, v in state["model"].items()}
        torch.save(state, ckpt)
    elif how == "no-checksum":
        (ckpt.parent / "last.pt.sha256").unlink()
    else:
        _damage(ckpt, how)
    if resealed:
        _record(ckpt)
    with pytest.raises(TrainError, match=message) as caught:
        run_training(cfg, resume=True, progress=False)
    assert "\n" not in str(caught.value) and "--overwrite" in str(caught.value)


def test_a_kill_between_the_two_renames_of_a_save_still_resumes(dataset, tmp_path, monkeypatch):
    """The checksum file accepts the old and the new checkpoint while one replaces the other."""
    whole = run_training(make_cfg(dataset, tmp_path / "whole"), progress=False)
    cfg = make_cfg(dataset, tmp_path / "run")
    write_sums, calls = runfolder._write_sums, []

    def killed_in_the_second_save(path, sums):  # saves at steps 10 and 20 write the sums twice each
        calls.append(len(sums))
        if len(calls) == 4:
            raise KeyboardInterrupt  # step 20's checkpoint is in place; its checksum file still lists two sums
        write_sums(path, sums)

    monkeypatch.setattr(runfolder, "_write_sums", killed_in_the_second_save)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, progress=False)
    monkeypatch.undo()
    assert calls == [1, 1, 2, 1]
    assert len((Path(cfg.out_dir) / "checkpoints" / "last.pt.sha256").read_text().splitlines()) == 2
    resumed = run_training(cfg, resume=True, progress=False)
    assert rows_of(Path(cfg.out_dir)) == rows_of(tmp_path / "whole") and resumed["ledger"] == whole["ledger"]


# --- metrics and config identity --------------------------------------------------------------------------
FREE_LOCK = """
import sys
from shards.lock import InUseError, hold_lock
try:
    hold_lock(sys.argv[1], "run folder")
except InUseError:
    sys.exit(3)
"""


def test_a_refused_run_frees_its_folder_for_other_processes(dataset, tmp_path):
    """A long-lived process (a sweep's Ray worker) whose run was refused must not keep the folder locked."""
    out = tmp_path / "run"
    run_training(make_cfg(dataset, out, steps=10), progress=False)
    with pytest.raises(TrainError, match="another config"):
        run_training(make_cfg(dataset, out, steps=20), progress=False)
    other = subprocess.run([sys.executable, "-c", FREE_LOCK, str(out / runfolder.LOCK)], env=ENV, timeout=60)
    assert other.returncode == 0


def test_resume_without_metrics_is_refused_not_a_wrong_t_n(dataset, tmp_path, monkeypatch):
    cfg = make_cfg(dataset, tmp_path / "run")
    out = killed_run(cfg, monkeypatch, at=25)
    (out / "metrics.jsonl").unlink()
    with pytest.raises(
        TrainError,
        match=r"metrics.jsonl: the rows of steps \[0, 10\] logged before the checkpoint "
        r"\(step 20\) are missing \(deleted or edited\), so T\(n\) would be wrong",
    ):
        run_training(cfg, resume=True, progress=False)


def test_the_same_dataset_by_another_path_is_the_same_run(dataset, tmp_path, monkeypatch):
    copy_dataset(dataset, tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    first = run_training(make_cfg(Path("ds"), tmp_path / "run", steps=10), progress=False)
    again = run_training(
        dataclasses.replace(make_cfg(Path("ds"), tmp_path / "run", steps=10), data="./ds/"), progress=False
    )
    assert again == first  # finished: returned at once, not "another config"
    absolute = dataclasses.replace(make_cfg(tmp_path / "ds", tmp_path / "run", steps=10))
    assert run_training(absolute, progress=False) == first


# --- bad data in the cache, bad devices -------------------------------------------------------------------
def _rewrite_sample(ds: Path, relpath: str, key: str, member: str, data: bytes) -> None:
    """Replace one member of a shard and record the new shard in the manifest (a well-formed but bad dataset)."""
    shard = ds / relpath
    with tarfile.open(shard) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    body = b"".join(tar_member(n, data if n == f"{key}.{member}" else d) for n, d in members) + tar_end()
    shard.write_bytes(body)
    manifest = json.loads((ds / "manifest.json").read_text())
    for split in manifest["splits"].values():
        for entry in split["shards"]:
            if entry["file"] == relpath:
                entry.update(sha256=hashlib.sha256(body).hexdigest(), bytes=len(body))
    (ds / "manifest.json").write_text(json.dumps(manifest))


def _png(shape) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", shape).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "label",
            r"data/train-000001.tar: sample 000000150: label 12 outside \[0, 10\), the manifest's classes; "
            "rebuild the shard",
        ),
        ("size", r"data/train-000001.tar: unreadable shard \(sample 000000150: image is 9x9, expected 8x8\); verify"),
        ("missing", r"data/train-000001.tar: missing, but the manifest lists it; re-run the command that made"),
    ],
)
def test_bad_shards_on_the_memory_path_give_one_line(dataset, tmp_path, monkeypatch, case, message):
    # The decoded cache is keyed by the manifest: the copy gets a cache of its own, so its shards are read.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    ds = copy_dataset(dataset, tmp_path / "ds")
    if case == "label":
        _rewrite_sample(ds, "data/train-000001.tar", "000000150", "cls", b"12")
    elif case == "size":
        _rewrite_sample(ds, "data/train-000001.tar", "000000150", "png", _png((9, 9)))
    else:
        (ds / "data" / "train-000001.tar").unlink()
    with pytest.raises(TrainError, match=message):
        run_training(make_cfg(ds, tmp_path / "run", data_path="memory"), progress=False)


@pytest.mark.parametrize(
    "split, kw",
    [
        ("test", dict(data_path="stream")),  # the evaluation set, read in order
        ("train", dict(data_path="stream", n=200)),  # the Real World's rows, one pass
        ("train", dict(data_path="stream", mode="ideal", steps=12, num_workers=0)),  # the Ideal World's stream
    ],
)
def test_an_out_of_range_label_on_the_streaming_path_is_one_line(dataset, tmp_path, split, kw):
    ds = copy_dataset(dataset, tmp_path / "ds")
    relpath, key = (f"data/{split}-000000.tar", "000000010")
    _rewrite_sample(ds, relpath, key, "cls", b"12")
    with pytest.raises(
        TrainError,
        match=rf"sample {key} has label 12, outside the manifest's 10 classes \[0, 10\); "
        "rebuild the dataset",
    ):
        run_training(make_cfg(ds, tmp_path / "run", **kw), progress=False)


def test_a_device_that_is_not_here_is_a_clear_error(dataset, tmp_path, monkeypatch):
    with pytest.raises(TrainError, match=r"--device=mps: use auto, cpu, cuda or cuda:N"):
        run_training(make_cfg(dataset, tmp_path / "a", device="mps"), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match=r"--device=cuda:3: no CUDA device here; use --device cpu or auto"):
            run_training(make_cfg(dataset, tmp_path / "b", device="cuda:3"), progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(TrainError, match=r"--device=cuda:3: only 2 CUDA device\(s\) here \(cuda:0..cuda:1\)"):
        run_training(make_cfg(dataset, tmp_path / "c", device="cuda:3"), progress=False)


# --- Ctrl-C end to end ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_cli_run_is_refused_and_ctrl_c_exits_130(dataset, tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "train",
        "run",
        "--data",
        str(dataset),
        "--n",
        "100",
        "--steps",
        "100000",
        "--batch-size",
        "16",
        "--model",
        "mlp",
        "--mlp-widths",
        "16",
        "--device",
        "cpu",
        "--eval-schedule",
        "every:50",
        "--eval-train-samples",
        "32",
        "--checkpoint-every-steps",
        "50",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "checkpoints" / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and second.stderr.strip().splitlines()[-1].startswith(
        f"error: run folder {out}: in use by pid {proc.pid} "
    )  # not two runs appending to one metrics.jsonl
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "interrupted; re-run the same command with --resume to continue"
    )
    assert (out / "checkpoints" / "last.pt.sha256").is_file()  # killed mid-run, after a checkpoint


def test_any_bytes_that_match_their_checksum_but_are_no_checkpoint_give_one_line(tmp_path):
    """torch's unpickler fails on garbage with many exception types (IndexError, KeyError, ...): each is
    the same clear error (a CI run once hit IndexError on os.urandom bytes)."""
    (tmp_path / "checkpoints").mkdir()
    for seed in range(100):
        data = random.Random(seed).randbytes(4096)
        (tmp_path / runfolder.CHECKPOINT).write_bytes(data)
        runfolder._write_sums(tmp_path / runfolder.CHECKSUM, [hashlib.sha256(data).hexdigest()])
        with pytest.raises(TrainError, match=r"last.pt: unreadable checkpoint \(.*\); restore it from a backup"):
            runfolder.load_checkpoint(tmp_path)


def test_an_extra_test_set_with_other_class_names_or_order_is_refused(dataset, tmp_path):
    names = [f"c{i}" for i in range(10)]
    swapped = build_dataset(tmp_path / "swapped", splits={"test": 20}, class_names=[names[1], names[0], *names[2:]])
    renamed = build_dataset(tmp_path / "renamed", splits={"test": 20}, class_names=[*names[:9], "truck"])
    with pytest.raises(
        TrainError,
        match=r"swapped: classes \['c1', 'c0', .* are not the train set's \['c0', "
        r"'c1', .*\(first difference at label 0\); an extra test set must name the same classes",
    ):
        run_training(make_cfg(dataset, tmp_path / "a", extra_test=(f"s={swapped}",)), progress=False)
    with pytest.raises(TrainError, match=r"renamed: classes .* \(first difference at label 9\)"):
        run_training(make_cfg(dataset, tmp_path / "b", extra_test=(f"r={renamed}",)), progress=False)
    same = build_dataset(tmp_path / "same", splits={"test": 20}, class_names=names)
    summary = run_training(make_cfg(dataset, tmp_path / "c", steps=10, extra_test=(f"same={same}",)), progress=False)
    assert summary["final"]["same/error"] is not None


# --- divergence -------------------------------------------------------------------------------------------
def test_a_diverged_run_stops_with_one_line_and_a_summary_that_says_so(dataset, tmp_path, capsys):
    from train.__main__ import main

    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(dataset),
        "--n",
        "100",
        "--steps",
        "30",
        "--batch-size",
        "16",
        "--model",
        "mlp",
        "--mlp-widths",
        "16",
        "--lr",
        "1e30",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--eval-schedule",
        "every:10",
        "--eval-train-samples",
        "32",
        "--out",
        str(out),
    ]  # with the progress bar, which once crashed
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {out}: training diverged (NaN or infinite loss or outputs) by step ")
    assert "Lower --lr (now 1e+30)" in err
    summary = runfolder.read_summary(out)
    assert summary["diverged_by_step"] in (10, 20, 30)
    rows = rows_of(out)  # only the evaluations before the divergence, each with finite metrics
    assert [r["step"] for r in rows] == list(range(0, summary["diverged_by_step"], 10))
    assert all(r["test/loss"] is not None for r in rows)
    assert main(args) == 2  # the finished-but-diverged folder answers the same line, never its summary
    assert capsys.readouterr().err.strip().splitlines()[-1] == err


def test_a_diverged_lane_stops_its_pack_with_one_line(dataset, tmp_path):
    from train.run.packed import run_packed

    cfgs = [
        make_cfg(dataset, tmp_path / "ok", checkpoint_every_steps=100),
        make_cfg(dataset, tmp_path / "bad", lr=1e30, seed=1, checkpoint_every_steps=100),
    ]
    with pytest.raises(TrainError, match=f"{tmp_path / 'bad'}: training diverged"):
        run_packed(cfgs, progress=False)
    assert runfolder.read_summary(tmp_path / "bad")["diverged_by_step"] is not None
    assert runfolder.read_summary(tmp_path / "ok") is None  # unfinished: a re-run resumes it


# --- full disk --------------------------------------------------------------------------------------------
def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_last(dataset, tmp_path, monkeypatch):
    import errno
    import shutil as shutil_mod

    out = tmp_path / "run"
    cfg = make_cfg(dataset, out, steps=20)
    saves = []
    real_save = torch.save

    def fills_the_disk(obj, f, *args, **kwargs):  # the second save (step 20) finds the disk full
        saves.append(f)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_the_disk)
    with pytest.raises(TrainError) as err:
        run_training(cfg, progress=False)
    assert str(err.value).startswith(f"no space left on {out / 'checkpoints'} for a ")
    assert str(err.value).endswith(
        "MB checkpoint: free that much and re-run with --resume; the previous checkpoint is kept"
    )
    assert runfolder.load_checkpoint(out)["step"] == 10  # the step-10 checkpoint still checks out
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")) == []  # no temp file
    monkeypatch.setattr(torch, "save", real_save)
    free = shutil_mod.disk_usage(out).free
    monkeypatch.setattr(shutil_mod, "disk_usage", lambda path: shutil_mod._ntuple_diskusage(free, 0, 1000))
    with pytest.raises(TrainError, match="no space left on .* MB checkpoint"):  # refused before writing
        runfolder.save_checkpoint(out, {"model": torch.zeros(1000)})
    assert runfolder.load_checkpoint(out)["step"] == 10


def test_a_full_disk_while_writing_config_metrics_or_summary_is_one_line(dataset, tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "run"
    message = (
        f"no space left on {out}: free some space and re-run the same command (with --resume to continue "
        "from the last checkpoint)"
    )
    monkeypatch.setattr(runfolder, "append_jsonl", full)  # the metrics rows, in a real run
    with pytest.raises(TrainError) as err:
        run_training(make_cfg(dataset, out), progress=False)
    assert str(err.value) == message
    monkeypatch.setattr(runfolder, "write_json_atomic", full)  # config.json, summary.json
    for write in (lambda: runfolder.start_fresh(make_cfg(dataset, out)), lambda: runfolder.write_summary(out, {})):
        with pytest.raises(TrainError) as err:
            write()
        assert str(err.value) == message
