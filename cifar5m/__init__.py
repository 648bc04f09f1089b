"""CIFAR-5m-like data: diffusion sampling -> labelling -> WebDataset shards (`python -m cifar5m --help`).

    from cifar5m import GenerateConfig, generate_dataset
    generate_dataset(GenerateConfig(out_dir="out/cifar5m", labeler="local-dir:out/labeler"))

The public names are listed in `__all__`; torch and diffusers load only when an entry call is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cifar5m.config import GenerateConfig
from cifar5m.errors import Cifar5mError
from shards.lazy import lazy_attributes

_LAZY = {  # name -> module: these import torch, diffusers or timm
    "generate_dataset": "cifar5m.api",
    "plan_generation": "cifar5m.api",
    "run_plan": "cifar5m.api",
    "RunPlan": "cifar5m.generate",
    "RunResult": "cifar5m.generate",
    "Progress": "cifar5m.generate",
    "run_with_bar": "cifar5m.progress",
    "Labeler": "cifar5m.label",
    "create_labeler_model": "cifar5m.label",
    "read_labeler_info": "cifar5m.label",
    "import_npz": "cifar5m.npz",
    "export_npz": "cifar5m.npz",
    "write_report": "cifar5m.report",
}

# The type checker and IDEs see the real signatures (`X as X`: re-exported); at run time __getattr__ imports them.
if TYPE_CHECKING:
    from cifar5m.api import generate_dataset as generate_dataset
    from cifar5m.api import plan_generation as plan_generation
    from cifar5m.api import run_plan as run_plan
    from cifar5m.generate import Progress as Progress
    from cifar5m.generate import RunPlan as RunPlan
    from cifar5m.generate import RunResult as RunResult
    from cifar5m.label import Labeler as Labeler
    from cifar5m.label import create_labeler_model as create_labeler_model
    from cifar5m.label import read_labeler_info as read_labeler_info
    from cifar5m.npz import export_npz as export_npz
    from cifar5m.npz import import_npz as import_npz
    from cifar5m.progress import run_with_bar as run_with_bar
    from cifar5m.report import write_report as write_report


__getattr__ = lazy_attributes("cifar5m", _LAZY)


__all__ = ["Cifar5mError", "GenerateConfig", *_LAZY]
