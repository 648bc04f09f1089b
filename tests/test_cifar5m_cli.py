"""The `generate` command line: help, one-line errors for each bad input, offline Hub ids, Ctrl-C and kill."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from model_fixtures import make_tiny_labeler

from cifar5m.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, **env: str) -> subprocess.Popen:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "cifar5m", *args],
        cwd=ROOT,
        env=environ,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def error_of(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_help_says_default_model_is_non_ema():
    proc = run_cli("generate", "--help")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "NON-EMA" in out and "converted from the EMA checkpoint is\n  accepted" in out
    for flag in (
        "--sampler",
        "--steps",
        "--batch-size",
        "--dtype",
        "--compile",
        "--shards",
        "--ray",
        "--labeler-checkpoint",
        "--class-names",
        "--dry-run",
        "--overwrite",
    ):
        assert flag in out


def _edited_pipeline(src: Path, dst: Path, part: str, **changes) -> Path:
    shutil.copytree(src, dst)
    path = dst / part
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return dst


def test_each_bad_input_gets_one_clear_line(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    base = ["generate", "--out", str(tmp_path / "out"), "--train", "10", "--test", "0", "--min-shards", "1"]
    good = ["--model", str(tiny_pipeline), "--labeler", f"local-dir:{tiny_labeler}"]
    assert "--labeler is required" in error_of(base + ["--model", str(tiny_pipeline)], capsys)
    assert "write it as A:B" in error_of(base + good + ["--shards", "7"], capsys)
    assert "need 0 <= A < B" in error_of(base + good + ["--shards", "5:5"], capsys)
    assert "this dataset has 1 shards" in error_of(base + good + ["--shards", "3:9"], capsys)
    assert "--batch-size=0: must be >= 1" in error_of(base + good + ["--batch-size", "0"], capsys)
    assert "--license other: needs --license-name" in error_of(base + good + ["--license", "other"], capsys)
    assert "--min-shards=0: must be >= 1" in error_of(base + good + ["--min-shards", "0"], capsys)
    assert "no such folder" in error_of(base + ["--model", "./missing", "--labeler", "x"], capsys)
    assert "not a diffusers pipeline folder" in error_of(
        base + ["--model", str(tiny_labeler), "--labeler", f"local-dir:{tiny_labeler}"], capsys
    )
    assert "only right with all 4 steps" in error_of(base + good + ["--steps", "2"], capsys)
    assert "--steps <= 4" in error_of(base + good + ["--sampler", "ddim", "--steps", "9"], capsys)
    assert "has 10 outputs but the dataset has 3 classes" in error_of(base + good + ["--class-names", "a,b,c"], capsys)
    big_head = make_tiny_labeler(tmp_path / "lab11", num_classes=11)
    assert "11 outputs but the dataset has 10 classes" in error_of(
        base + ["--model", str(tiny_pipeline), "--labeler", f"local-dir:{big_head}"], capsys
    )
    rect = _edited_pipeline(tiny_pipeline, tmp_path / "rect", "unet/config.json", sample_size=[32, 16])
    assert "need square images" in error_of(base + ["--model", str(rect), "--labeler", good[3]], capsys)
    ve = _edited_pipeline(
        tiny_pipeline, tmp_path / "ve", "scheduler/scheduler_config.json", _class_name="ScoreSdeVeScheduler"
    )
    assert "DDPM-style beta schedule" in error_of(base + ["--model", str(ve), "--labeler", good[3]], capsys)
    assert not (tmp_path / "out").exists()  # every check runs before anything is written


def test_a_plan_of_too_many_shards_is_refused_at_once(tmp_path, capsys):
    start = time.perf_counter()
    message = error_of(
        [
            "generate",
            "--out",
            str(tmp_path / "out"),
            "--train",
            "100000000",
            "--shard-size",
            "1",
            "--labeler",
            "x",
            "--dry-run",
        ],
        capsys,
    )
    assert message.startswith(
        "error: --train 100000000 --test 1000000 at --shard-size 1: 101,000,000 shards, more than 100,000"
    )
    assert time.perf_counter() - start < 2 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unreachable_hub_ids_name_the_id_and_the_local_way(tmp_path, tiny_pipeline, tiny_labeler):
    model = run_cli("generate", "--out", str(tmp_path / "a"), "--labeler", f"local-dir:{tiny_labeler}")
    labeler = run_cli(
        "generate",
        "--out",
        str(tmp_path / "b"),
        "--model",
        str(tiny_pipeline),
        "--labeler",
        "hf-hub:someone/cifar10-labeler",
    )
    for proc, name, hint in [
        (model, "google/ddpm-cifar10-32", "--model DIR"),
        (labeler, "someone/cifar10-labeler", "--labeler local-dir:DIR"),
    ]:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0] and hint in lines[0]


def _wait_for_stats(out: Path, count: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while len(list((out / ".shards").glob("train-*.json"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no shard committed in time"
        time.sleep(0.05)


def _hashes(root: Path) -> dict[str, str]:
    files = sorted((root / "data").glob("*.tar")) + [root / "manifest.json"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_ctrl_c_and_kill_leave_no_partial_shard_and_resume_identically(tmp_path, tiny_pipeline, tiny_labeler):
    args = [
        "generate",
        "--model",
        str(tiny_pipeline),
        "--labeler",
        f"local-dir:{tiny_labeler}",
        "--train",
        "200",
        "--test",
        "0",
        "--shard-size",
        "10",
        "--batch-size",
        "10",
    ]
    reference = tmp_path / "reference"
    assert main(args + ["--out", str(reference)]) == 0
    out = tmp_path / "interrupted"
    proc = run_cli(*args, "--out", str(out))
    _wait_for_stats(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "re-run the same command to resume" in err
    proc = run_cli(*args, "--out", str(out))
    _wait_for_stats(out, len(list((out / ".shards").glob("train-*.json"))) + 1, proc)
    proc.kill()
    proc.communicate(timeout=60)
    committed = {p.stem for p in (out / ".shards").glob("train-*.json")}
    in_data = {p.stem for p in (out / "data").glob("*.tar")}
    # data/ only ever receives whole files (renamed in); a kill between the rename and the stats file
    # leaves at most one uncommitted shard there, which the next run redoes
    assert committed <= in_data and len(in_data - committed) <= 1
    for path in (out / "data").glob("*.tar"):
        with tarfile.open(path) as tar:
            assert len(tar.getnames()) == 3 * 10
    assert 2 <= len(committed) < 20 and not (out / "manifest.json").exists()
    assert main(args + ["--out", str(out)]) == 0
    assert _hashes(out) == _hashes(reference)


def test_generated_card_states_the_chosen_licence_and_the_inputs_licences(tmp_path, tiny_pipeline, tiny_labeler):
    from cifar5m.cli import build_parser, config_from_args
    from cifar5m.generate import plan_run

    (tiny_pipeline / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    try:
        args = build_parser().parse_args(
            [
                "generate",
                "--out",
                str(tmp_path / "o"),
                "--model",
                str(tiny_pipeline),
                "--labeler",
                f"local-dir:{tiny_labeler}",
                "--license",
                "cc-by-4.0",
            ]
        )
        card = plan_run(config_from_args(args), "cpu").card()
    finally:
        (tiny_pipeline / "README.md").unlink()
    assert card.license == "cc-by-4.0"
    assert any(n.endswith("generator apache-2.0; labeler not stated in its README.md.") for n in card.notes)
