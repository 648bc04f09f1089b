"""A package's heavy public names, imported on first use (PEP 562 module `__getattr__`).

_LAZY = {"run_training": "train.run.loop"}          # name -> module that defines it
__getattr__ = lazy_attributes("train", _LAZY)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` importing `table[name]` when `name` is first asked for (torch stays unloaded
    until an entry call needs it)."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
