"""A finished run's summary (`summary.json`): a typed record with the run's provenance.

Provenance beside the results: the pack size (1 = trained alone; K = one of K runs trained as one packed
model, `train.run.packed`), the device and the torch version. Runs on different devices or torch builds
follow different float paths, and SGD amplifies such differences, so a report that mixes them says so.

    summary = RunSummary.from_dict(json.loads(path.read_text())); summary.to_dict()
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSummary:
    mode: str
    n: int | None
    steps: int
    steps_done: int
    batch_size: int
    model: str
    seed: int
    data: str
    fit_threshold: float
    fit_step: int | None  # T(n): first evaluated step with train error <= fit_threshold
    at_fit: dict | None  # the metrics row at T(n)
    final: dict | None  # the last metrics row (None when a run diverged before its first evaluation)
    stopped_at_fit: bool
    ledger: dict
    img_per_s: float | None
    wall_s: float
    world_size: int
    config_hash: str
    batchnorm: str
    diverged_by_step: int | None = None  # the step whose loss or outputs were no longer finite
    pack_size: int | None = None  # None where a summary does not record it
    device: str | None = None  # e.g. "cpu", "cuda:0 (NVIDIA H200)"
    torch_version: str | None = None
    extra: dict = field(default_factory=dict)  # fields this record does not name, kept on a round trip

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """A saved summary; fields missing from older files take their defaults (None for provenance)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        defaults = {
            f.name: None
            for f in dataclasses.fields(cls)
            if f.name in names and f.name not in known and f.default is dataclasses.MISSING
        }
        return cls(**defaults, **known, extra={k: v for k, v in data.items() if k not in names})


def device_name(device) -> str:
    """`cpu`, or `cuda:0 (NVIDIA H200)`: the accelerator's model matters for float paths."""
    import torch  # deferred: reading summaries needs no torch

    if getattr(device, "type", None) == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
