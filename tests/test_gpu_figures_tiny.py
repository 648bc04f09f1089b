"""bench/gpu_figures.py, the one prepared GPU call, at toy sizes on the CPU (--tiny): every part runs and
the one table comes out; a spent budget skips parts with a note; a part past its slice is stopped."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_figures  # noqa: E402  (bench/ is not a package)


def figures(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    md = tmp_path / "results.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_figures.py"), "--tiny", "--record", str(md), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, md.read_text() if md.is_file() else ""


@pytest.mark.slow
def test_tiny_run_makes_one_table_of_every_part(tmp_path):
    proc, text = figures(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "## GPU figures (`python bench/gpu_figures.py --tiny --record" in text and "CPU (--tiny)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    # speed: 1 row; packed (TINY: per-run batches 4 and 8): 1 run + packed each; fig1; sampler: eager at
    # batch 8 + dpmpp; labeller at batch 2; the pipeline's total; and the header
    assert sum("ResNet-18, 1 run" in r for r in rows) == 3 and sum("packed runs" in r for r in rows) == 2
    assert sum(r.startswith("| Fig. 1") for r in rows) == 1
    assert sum("evals/s" in r for r in rows) == 1 and sum(r.startswith("| sampler dpmpp-4") for r in rows) == 1
    assert sum(r.startswith("| labeller test_resnet @ 128 px, batch 2") for r in rows) == 1
    total = re.search(r"\*\*(\d+\.\d+) h\*\* \((\d+\.\d+) \+ (\d+\.\d+)\)", text)
    assert total, text
    assert abs(float(total[1]) - float(total[2]) - float(total[3])) <= 0.011  # rounding of the two terms
    notes = [line for line in text.splitlines() if line.startswith("- ")]
    assert [n.split(":")[0] for n in notes] == ["- train-packed", "- train-fig1", "- sampler", "- label"]
    assert all(re.fullmatch(r"- [a-z1-]+: \d+ s of a \d+ s slice", n) for n in notes), notes  # none stopped


def test_spent_budget_skips_every_part_with_a_note(tmp_path):
    proc, text = figures(tmp_path, "--budget-s", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("train-packed", "train-fig1", "sampler", "label"):
        assert f"- {name}: skipped: the budget is spent" in text
    assert "6M-image pipeline: sampling dpmpp-20 + labelling | not measured (see the notes)" in text


def test_bad_budget_and_no_gpu_get_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    for args, message in [
        (["--tiny", "--budget-s", "0"], "error: --budget-s 0: must be > 0 seconds"),
        ([], "error: no CUDA device; these are GPU figures"),
    ]:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "gpu_figures.py"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0 and proc.stderr.strip().startswith(message) and "Traceback" not in proc.stderr


def test_part_past_its_slice_is_stopped_and_keeps_what_it_wrote(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, time\nopen(sys.argv[-1], 'w').write('{\"done\": 1}')\nprint('wrote', flush=True)\ntime.sleep(60)\n"
    )
    part = gpu_figures.Part("slow", str(script), 1, (), ())  # an absolute path stays itself under bench/
    out = tmp_path / "slow.json"
    start = time.perf_counter()
    note = gpu_figures.run_part(part, argparse.Namespace(tiny=True), out, timeout_s=3)
    assert note == "stopped at the end of its slice" and time.perf_counter() - start < 20
    assert json.loads(out.read_text()) == {"done": 1}


def test_a_part_that_records_a_failure_is_retried_with_its_fallback(tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(
        "import json, sys\nfig1 = {'error': 'Traceback ...\\nRuntimeError: no graphs'} "
        "if sys.argv[1] == 'graphs' else {'total_s': 240.0}\n"
        "open(sys.argv[-1], 'w').write(json.dumps({'fig1': fig1}))\n"
    )
    part = gpu_figures.Part("fig1", str(script), 1, ("graphs",), (), retry_args=("plain",))
    results, note = gpu_figures.run_with_retry(part, argparse.Namespace(tiny=False), tmp_path / "f.json", 100)
    assert results == {"fig1": {"total_s": 240.0}}
    assert re.fullmatch(r"\d+ s of a 100 s slice; fig1 failed: RuntimeError: no graphs; retried with plain", note)
