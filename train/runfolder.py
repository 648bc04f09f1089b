"""The run folder: what a run writes, and the decision to start, resume, refuse or return at once.

    <out_dir>/config.json          RunConfig.to_dict(), written before training
    <out_dir>/metrics.jsonl        one flat JSON object per evaluation
    <out_dir>/summary.json         written when the run ends (T(n), metrics at T(n) and at the end, ledger)
    <out_dir>/checkpoints/last.pt  model, optimizer, sampler, step, ledger, config (plain tensors and dicts)

Every file is written to a temporary name and renamed, so a killed run leaves old or new, never half.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.config import RunConfig, config_hash, identity_dict
from train.errors import TrainError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoints/last.pt"


@dataclass
class Start:
    kind: str  # "fresh" | "resume" | "finished"
    summary: dict[str, Any] | None = None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def dumps(obj: dict[str, Any], indent: int | None = None) -> str:
    # allow_nan=False: a NaN (a diverged run) must not write a file other JSON readers reject.
    return json.dumps(obj, indent=indent, allow_nan=False)


def _differences(old: dict[str, Any], new: RunConfig) -> str:
    try:
        before = identity_dict(RunConfig.from_dict(old))
    except (TrainError, TypeError):
        return "its config.json is not a trainer config"
    after = identity_dict(new)
    keys = sorted(set(before) | set(after))
    changed = [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys if before.get(k) != after.get(k)]
    return "; ".join(changed[:6]) + ("; ..." if len(changed) > 6 else "")


def _clear(out: Path) -> None:
    for name in (CONFIG, METRICS, SUMMARY):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


def prepare_run_dir(cfg: RunConfig, resume: bool, overwrite: bool) -> Start:
    """Decide how this run starts (writes nothing); refuse a folder holding another config unless `overwrite`."""
    out = Path(cfg.out_dir)
    config_file = out / CONFIG
    if config_file.is_file() and not overwrite:
        try:
            old = json.loads(config_file.read_text())
        except ValueError:
            old = {}
        diff = _differences(old, cfg)
        if diff:
            raise TrainError(f"{out}: holds a run with another config ({diff}); choose another --out, or pass "
                             "--overwrite to replace it")
        summary = read_json(out / SUMMARY)
        if summary and summary.get("config_hash") == config_hash(cfg):
            return Start("finished", summary)
        if (out / CHECKPOINT).is_file():
            if resume:
                return Start("resume")
            raise TrainError(f"{out}: holds an unfinished run of this config; pass --resume to continue it from "
                             "its last checkpoint, or --overwrite to start again")
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out={out}: exists and is not a folder; choose another --out")
    return Start("fresh")


def start_fresh(cfg: RunConfig) -> None:
    """Empty the run files of the folder (once the data has loaded) and write config.json."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    _write_atomic(out / CONFIG, json.dumps(cfg.to_dict(), indent=1, sort_keys=True) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_metrics(out: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(out) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(out: str | os.PathLike, step: int) -> list[dict[str, Any]]:
    """Keep the rows up to `step` (a resumed run recomputes the rest) and return them."""
    rows = [r for r in read_metrics(out) if r["step"] <= step]
    _write_atomic(Path(out) / METRICS, "".join(dumps(r) + "\n" for r in rows))
    return rows


def append_metrics(out: str | os.PathLike, row: dict[str, Any]) -> None:
    with open(Path(out) / METRICS, "a") as f:
        f.write(dumps(row) + "\n")


def write_summary(out: str | os.PathLike, summary: dict[str, Any]) -> None:
    _write_atomic(Path(out) / SUMMARY, dumps(summary, indent=1) + "\n")


def save_checkpoint(out: str | os.PathLike, state: dict[str, Any]) -> None:
    import torch

    path = Path(out) / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(out: str | os.PathLike) -> dict[str, Any]:
    import torch

    path = Path(out) / CHECKPOINT
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise TrainError(f"{path}: unreadable checkpoint ({exc}); pass --overwrite to start the run again") from exc
