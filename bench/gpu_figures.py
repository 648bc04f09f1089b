"""Issue 13's GPU figures in one call: training, Fig. 1, sampler, labeller, and the 6M-image pipeline's total.

    python bench/gpu_figures.py                  # one H200, under 10 minutes (--budget-s 540); appends
                                                 # the table to bench/RESULTS.md
    python bench/gpu_figures.py --tiny           # every part at toy sizes on the CPU, in seconds
    python bench/gpu_figures.py --tiny --record out.md   # ... and append the (toy) table there

Runs the existing scripts as subprocesses with --json outputs, in this order, each within a slice of the
time budget (its weight's share of what is left, so time a part leaves unused goes to the later ones):
  train-packed  bench/gpu_train.py --parts speed,packed: one ResNet-18 run at batch 512, compiled; then
                8 runs packed at 128 and 512 images per run and step vs one run at the same batch (target
                >= 100K img/s). One process: the one-run model at 512 may reuse speed's compiled graph.
  train-fig1    bench/gpu_train.py --parts fig1: Real n = 50K + Ideal on a random 5M pool, packed,
                CUDA graphs, steps timed and projected to 39,000 each (target < 5 GPU-minutes)
  sampler       bench/gpu_sampler.py: UNet evals/s at batch 4096 with CUDA graphs (reduce-overhead), then
                plain compile, fraction of peak (target >= 40%; the plain-compile baseline is 20.7K = 32.5% at
                4096 and 20.3K at 1024: a larger batch is not the lever); dpmpp-20 images/s on the faster one
  label         bench/gpu_label.py: BiT-M-R152x2 at 128 px, images/s
A part that overruns its slice is stopped (its process group killed) and reports what it had measured;
a part whose slice is spent is skipped with a note. Then one table is printed and appended to --record.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from shards.jsonio import read_json

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MIN_SLICE_S = 20  # below this a GPU part cannot even start (CUDA init + imports take ~10 s)
# The plain-compile sampler's rate on the H200 (bench/RESULTS.md: compiled bf16, batch 4096).
BASELINE_EVALS_PER_S = 20_700
PEAK_TFLOPS = 790.0  # bf16 dense matmul measured on an H200 (bench/gpu_sampler.py)


@dataclass(frozen=True)
class Part:
    name: str
    script: str
    weight: float  # share of the budget
    gpu_args: tuple[str, ...]
    tiny_args: tuple[str, ...]
    retry_args: tuple[str, ...] = ()  # GPU: run again with these, in what is left of the slice, if it failed


# Weights: about four torch.compile calls of ResNet-18 in train-packed, one in train-fig1, two of the
# UNet in sampler, none in label (an estimate: no compile time of these was measured on the H200 yet).
PARTS = (
    Part(
        "train-packed",
        "gpu_train.py",
        200,
        (
            "--parts",
            "speed,packed",
            "--batch-size",
            "512",
            "--steps",
            "50",
            "--warmup",
            "10",
            "--packed-batches",
            "128,512",
            "--pack",
            "8",
            "--compile-modes",
            "default",
        ),
        ("--parts", "speed,packed", "--tiny"),
    ),
    # batch 128 with two runs is launch-bound: CUDA graphs (reduce-overhead) are where they help most
    Part(
        "train-fig1",
        "gpu_train.py",
        110,
        ("--parts", "fig1", "--fig1-steps", "2000", "--warmup", "10", "--compile-modes", "reduce-overhead"),
        ("--parts", "fig1", "--tiny"),
        # CUDA graphs over a packed training step have not run on a GPU yet: plain compile if they fail
        ("--parts", "fig1", "--fig1-steps", "2000", "--warmup", "10", "--compile-modes", "default"),
    ),
    Part(
        "sampler",
        "gpu_sampler.py",
        170,
        (
            "--parts",
            "unet,presets",
            "--batches",
            "4096",
            "--compile-modes",
            "reduce-overhead,default",
            "--presets",
            "dpmpp:20",
        ),
        ("--smoke", "--parts", "unet,presets", "--batches", "8", "--presets", "dpmpp:20"),
    ),
    Part(
        "label", "gpu_label.py", 60, ("--batches", "512,1024", "--repeats", "3"), ("--smoke", "--model", "test_resnet")
    ),
)


def run_part(part: Part, args, json_path: Path, timeout_s: float) -> str:
    """Run one part's script with its slice as a deadline; '' when it finished, else what happened."""
    argv = [
        sys.executable,
        str(BENCH / part.script),
        *(part.tiny_args if args.tiny else part.gpu_args),
        "--json",
        str(json_path),
    ]
    print(f"== {part.name}: {shlex.join(argv[1:])} (slice {timeout_s:.0f} s)", flush=True)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",  # its lines as they come, through the pipe
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH), os.environ.get("PYTHONPATH", "")]),
    }
    # its own session: on a timeout the whole group goes (torch.compile's worker processes too)
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    tail: list[str] = []
    reader = threading.Thread(target=echo, args=(proc.stdout, tail), daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(proc)
        return "stopped at the end of its slice"
    except KeyboardInterrupt:
        stop(proc)
        raise
    finally:
        reader.join(timeout=5)
    return "" if rc == 0 else f"failed (exit {rc}): {tail[-1] if tail else 'no output'}"


def echo(stream, tail: list[str]) -> None:
    """Print the child's lines as they come and keep the last few for the note of a failure."""
    for line in stream:
        print("   " + line, end="", flush=True)
        tail[:] = (tail + [line.strip()])[-5:]


def stop(proc: subprocess.Popen) -> None:
    """End the part's process group (only it: the group was made for this child), politely first."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def pct(fraction) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}% of peak"


def train_rows(results: dict) -> list[str]:
    rows = []
    if "speed" in results and "img_per_s" in results["speed"]:
        s = results["speed"]
        rows.append(
            f"| ResNet-18, 1 run, batch {s['batch_size']}{', compiled' if s['compile'] else ''} | "
            f"{s['img_per_s']:,.0f} img/s | {pct(s['peak_fraction'])} | |"
        )
    for name, r in results.get("packed", {}).items():
        if "img_per_s" not in r:
            continue
        one = r["img_per_s"] / r["vs_one_run"]
        rows.append(
            f"| ResNet-18, 1 run, {name.split(',')[0]} | {one:,.0f} img/s | "
            f"{pct(r['peak_fraction'] / r['vs_one_run'])} | |"
        )
        rows.append(
            f"| ResNet-18, packed runs, {name} each | {r['img_per_s']:,.0f} img/s | {pct(r['peak_fraction'])}"
            f", {r['vs_one_run']:.2f}x one run | >= 100,000 img/s |"
        )
    f = results.get("fig1", {})
    if "total_s" in f:
        rows.append(
            f"| Fig. 1: Real + Ideal, 39,000 steps each, packed, batch {f['batch_size']} | "
            f"{f['total_s'] / 60:.1f} GPU-min ({f['train_img_per_s']:,.0f} img/s over {f['timed_steps']:,} "
            f"steps, {f['evaluations']} evaluations x {f['eval_s_each']:.2f} s) | | < 5 min |"
        )
    return rows


def sampler_rows(results: dict) -> tuple[list[str], tuple[str, float] | None]:
    rows = []
    for name, r in results.get("unet", {}).items():
        rows.append(
            f"| UNet (DDPM CIFAR-10), {name} | {r['evals_per_s']:,.0f} evals/s "
            f"({r['evals_per_s'] / BASELINE_EVALS_PER_S:.2f}x 20.7K) | {pct(r['peak_fraction'])} | >= 40% |"
        )
    preset = None  # (name, hours for 6M images) of the dpmpp preset: the pipeline's sampler
    for name, r in results.get("presets", {}).items():
        if name.startswith("dpmpp-"):
            preset = (name, r["hours_6m"])
        rows.append(
            f"| sampler {name}, batch {r['batch']}, {r['compile_mode']} | {r['images_per_s']:,.0f} img/s | "
            f"6M images in {r['hours_6m']:.2f} h | |"
        )
    return rows, preset


def label_rows(results: dict) -> tuple[list[str], float | None]:
    rows, best = [], None
    for batch, r in results.get("batches", {}).items():
        rows.append(
            f"| labeller {results['model']} @ {results['input_px']} px, batch {batch} | "
            f"{r['images_per_s']:,.0f} img/s | {pct(r['peak_fraction'])}; "
            f"6M images in {r['hours_6m']:.2f} h | |"
        )
        best = r["hours_6m"] if best is None else min(best, r["hours_6m"])
    return rows, best


def table(outputs: dict[str, dict], notes: dict[str, str]) -> list[str]:
    train = {}
    for name in ("train-packed", "train-fig1"):
        train.update(outputs.get(name, {}))
    lines = ["| figure | measured | fraction of bf16 peak (790 TFLOP/s) | target |", "|---|---:|---:|---|"]
    lines += train_rows(train)
    rows, preset = sampler_rows(outputs.get("sampler", {}))
    lines += rows
    rows, label_h = label_rows(outputs.get("label", {}))
    lines += rows
    if preset is not None and label_h is not None:
        lines.append(
            f"| **6M-image pipeline: sampling {preset[0]} + labelling** | **{preset[1] + label_h:.2f} h** "
            f"({preset[1]:.2f} + {label_h:.2f}) | | |"
        )
    else:
        lines.append("| 6M-image pipeline: sampling dpmpp-20 + labelling | not measured (see the notes) | | |")
    lines += [""] + [f"- {name}: {note}" for name, note in notes.items()]
    return lines


def run_with_retry(part: Part, args, json_path: Path, timeout_s: float) -> tuple[dict, str]:
    """(the part's figures, its note: wall time of its slice and what went wrong), retried once with
    retry_args if it failed and enough of its slice is left."""
    start = time.perf_counter()
    note = run_part(part, args, json_path, timeout_s)
    results = read_json(json_path, default={})  # the parts write it atomically
    failures = errors_in(results)
    left = timeout_s - (time.perf_counter() - start)
    if (note or failures) and part.retry_args and not args.tiny and left >= MIN_SLICE_S:
        failures.append(f"retried with {shlex.join(part.retry_args)}")
        json_path.unlink(missing_ok=True)  # the first run's figures (written by our child in our temp folder)
        note = run_part(dataclasses.replace(part, gpu_args=part.retry_args), args, json_path, left)
        results = read_json(json_path, default={})
        failures += errors_in(results)
    # each part's wall time: what the next session needs to set the slices
    text = "; ".join(
        [f"{time.perf_counter() - start:.0f} s of a {timeout_s:.0f} s slice", *failures] + ([note] if note else [])
    )
    return results, text


def errors_in(results: dict) -> list[str]:
    """The errors a part caught and recorded (gpu_train: per part; gpu_sampler: per compile mode)."""
    found = [
        f"{name} failed: {r['error'].strip().splitlines()[-1]}"
        for name, r in results.items()
        if isinstance(r, dict) and isinstance(r.get("error"), str)
    ]
    return found + [f"{name} failed: {text}" for name, text in results.get("errors", {}).items()]


def cuda_device_name() -> str:
    import torch  # heavy: only to check for and name the device (the parts run in their own processes)

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; these are GPU figures (run with --tiny to check the script on CPU)")
    return torch.cuda.get_device_name(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=540, help="time for all parts together (default 540)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: checks every part in seconds")
    parser.add_argument("--record", help="append the table here (default bench/RESULTS.md; none with --tiny)")
    args = parser.parse_args()
    if args.budget_s <= 0:
        raise SystemExit(f"error: --budget-s {args.budget_s:g}: must be > 0 seconds, e.g. --budget-s 540")
    record = args.record or (None if args.tiny else str(BENCH / "RESULTS.md"))
    device = "CPU (--tiny)" if args.tiny else cuda_device_name()
    began = time.perf_counter()
    outputs, notes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, part in enumerate(PARTS):
            left = args.budget_s - (time.perf_counter() - began)
            timeout_s = left * part.weight / sum(p.weight for p in PARTS[i:])
            if timeout_s < (1 if args.tiny else MIN_SLICE_S):
                notes[part.name] = f"skipped: the budget is spent ({max(left, 0):.0f} s of {args.budget_s:.0f} left)"
                continue
            outputs[part.name], notes[part.name] = run_with_retry(
                part, args, Path(tmp) / f"{part.name}.json", timeout_s
            )
    total_s = time.perf_counter() - began
    head = (
        f"\n## GPU figures (`python bench/gpu_figures.py {shlex.join(sys.argv[1:])}`)\n\n{device}, "
        f"torch {version('torch')}, {time.strftime('%Y-%m-%d')}, {total_s:.0f} s of a {args.budget_s:.0f} s "
        "budget\n"
    )
    text = "\n".join([head, *table(outputs, notes)]) + "\n"
    print(text, flush=True)
    if record:
        with open(record, "a") as f:
            f.write(text)
        print(f"appended to {record}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the running part's group was stopped in run_part
        raise SystemExit("interrupted: nothing recorded; run the same command again") from None
