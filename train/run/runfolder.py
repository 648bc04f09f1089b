"""The run folder: the one owner of its file names, its writes and reads, and the decision to start,
resume, refuse or return at once.

    <out_dir>/config.json          RunConfig.to_dict(), written before training
    <out_dir>/metrics.jsonl        one flat JSON object per evaluation, appended
    <out_dir>/summary.json         written when the run ends (T(n), metrics at T(n) and at the end, ledger)
    <out_dir>/checkpoints/last.pt  model, optimizer, sampler, step, ledger, config (plain tensors and dicts)

Whole files are written to a temporary name and renamed (`shards.jsonio`), so a killed run leaves the old
file or the new one, never half; metrics rows are appended and fsynced, so a kill loses at most the row
being written, and readers drop that partial last line (`shards.jsonio.read_jsonl`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shards.errors import ShardsError
from shards.jsonio import append_jsonl, dumps, read_json, read_jsonl, write_json_atomic, write_text_atomic
from train.core.config import RunConfig, config_hash, identity_dict
from train.errors import TrainError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoints/last.pt"


@dataclass
class Start:
    kind: str  # "fresh" | "resume" | "finished"
    summary: dict[str, Any] | None = None


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
    if (out / CONFIG).is_file() and not overwrite:
        diff = _differences(_read_or_none(out / CONFIG) or {}, cfg)
        if diff:
            raise TrainError(f"{out}: holds a run with another config ({diff}); choose another --out, or pass "
                             "--overwrite to replace it")
        summary = _read_or_none(out / SUMMARY)
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


def _read_or_none(path: Path) -> Any:
    """A file of ours, or None when missing or unreadable (the start decision then treats it as absent)."""
    try:
        return read_json(path, default=None)
    except (ShardsError, OSError):
        return None


def start_fresh(cfg: RunConfig) -> None:
    """Empty the run files of the folder (once the data has loaded) and write config.json."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    write_json_atomic(out / CONFIG, cfg.to_dict())


def summary_path(out: str | os.PathLike) -> Path:
    return Path(out) / SUMMARY


def is_finished(out: str | os.PathLike) -> bool:
    """A summary.json is written only when a run ends."""
    return summary_path(out).is_file()


def has_metrics(out: str | os.PathLike) -> bool:
    return (Path(out) / METRICS).is_file()


def read_config(out: str | os.PathLike) -> dict[str, Any] | None:
    return _read_checked(Path(out) / CONFIG)


def read_summary(out: str | os.PathLike) -> dict[str, Any] | None:
    return _read_checked(Path(out) / SUMMARY)


def _read_checked(path: Path) -> Any:
    """A file of ours, None when missing; unreadable JSON is a TrainError saying what to do."""
    try:
        return read_json(path, default=None)
    except ShardsError as exc:
        raise TrainError(f"{exc}; or re-run the run with --overwrite") from exc


def read_metrics(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The logged rows in file order; the partial last line a killed run can leave is dropped."""
    try:
        return read_jsonl(Path(out) / METRICS)
    except ShardsError as exc:
        raise TrainError(f"{exc}; or re-run the run with --overwrite") from exc


def truncate_metrics(out: str | os.PathLike, step: int) -> list[dict[str, Any]]:
    """Keep the rows up to `step` (a resumed run recomputes the rest) and return them."""
    rows = [r for r in read_metrics(out) if r["step"] <= step]
    write_text_atomic(Path(out) / METRICS, "".join(_row_line(r) for r in rows))
    return rows


def _row_line(row: dict[str, Any]) -> str:
    return dumps(row, indent=None, sort_keys=False) + "\n"  # as append_metrics writes it


def append_metrics(out: str | os.PathLike, row: dict[str, Any]) -> None:
    # Keys in the loop's order (step, epoch, samples_seen, lr, then the metrics): rows read left to right.
    append_jsonl(Path(out) / METRICS, row, sort_keys=False)


def write_summary(out: str | os.PathLike, summary: dict[str, Any]) -> None:
    write_json_atomic(summary_path(out), summary)


def save_checkpoint(out: str | os.PathLike, state: dict[str, Any]) -> None:
    import torch  # deferred: only a training process saves or loads checkpoints; reports never need torch

    path = Path(out) / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(out: str | os.PathLike) -> dict[str, Any]:
    import torch  # deferred: only a training process saves or loads checkpoints; reports never need torch

    path = Path(out) / CHECKPOINT
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise TrainError(f"{path}: unreadable checkpoint ({exc}); pass --overwrite to start the run again") from exc
