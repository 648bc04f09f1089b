"""Per-example test outputs of a run, kept at every evaluation so reports can count the test set's error.

`<run>/test_outputs/step-000000123.npy`: float16, shape (3, N test examples), rows = wrong (0/1),
soft-error (1 - p_label) and cross-entropy of each example, in the test set's fixed order. 6 bytes per
example and evaluation (10,000 test images x 64 evaluations: 3.8 MB). Written by the main process of a
single-process run (under DDP each rank holds only its share of the test set, and none is written).

    save(run_dir, step, values); steps, values = load(run_dir, [100, 120])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shards.jsonio import atomic_target

DIR = "test_outputs"
ROWS = ("error", "soft_error", "loss")


def _path(out: str | os.PathLike, step: int) -> Path:
    return Path(out) / DIR / f"step-{step:09d}.npy"


def save(out: str | os.PathLike, step: int, values: np.ndarray) -> None:
    """Write one evaluation's (3, N) per-example values atomically (a killed write leaves no half file)."""
    path = _path(out, step)
    path.parent.mkdir(exist_ok=True)
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(values, dtype=np.float16))


def saved_steps(out: str | os.PathLike) -> list[int]:
    folder = Path(out) / DIR
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("step-*.npy")) if folder.is_dir() else []


def load(out: str | os.PathLike, steps, row: str) -> np.ndarray | None:
    """(len(steps), N) values of `row` at those steps as float64; None if any step was not kept."""
    paths = [_path(out, int(s)) for s in steps]
    if not all(p.is_file() for p in paths):
        return None
    return np.stack([np.load(p)[ROWS.index(row)].astype(np.float64) for p in paths])


def clear(out: str | os.PathLike) -> None:
    """Delete the kept outputs (a fresh start), and the folder when nothing else is in it."""
    folder = Path(out) / DIR
    if not folder.is_dir():
        return
    for path in folder.glob("step-*.npy"):
        path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()
