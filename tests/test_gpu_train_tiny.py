"""bench/gpu_train.py at toy sizes on the CPU (--tiny): the GPU script's packed and Fig. 1 parts run and
record their tables, so the one prepared GPU call does not fail on its first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_train_tiny_runs_every_packing_part(tmp_path):
    out, md = tmp_path / "results.json", tmp_path / "results.md"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu_train.py"),
            "--tiny",
            "--parts",
            "speed,packed,fig1",
            "--json",
            str(out),
            "--record",
            str(md),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"speed", "packed", "fig1"}
    assert results["speed"]["img_per_s"] > 0
    # the packed part: 2 runs at per-run batches 4 and 8 (TINY), each against one run at the same batch
    assert set(results["packed"]) == {"batch 4, eager", "batch 8, eager"}
    assert all(r["img_per_s"] > 0 and r["vs_one_run"] > 0 for r in results["packed"].values())
    fig1 = results["fig1"]
    assert fig1["evaluations"] == 59 and fig1["timed_steps"] == 2  # "log:64" over 39,000 steps
    assert fig1["total_s"] > 39_000 * fig1["step_s"]
    text = md.read_text()
    assert "--tiny" in text and "| 2 packed runs, batch 8 each, eager |" in text and "Fig. 1 packed" in text
