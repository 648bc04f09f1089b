"""Dataset locations: a local folder, or a URL (`http(s)://...`, `hf://datasets/ORG/NAME[@REV]`)."""

from __future__ import annotations

import os

URL_SCHEMES = ("http://", "https://", "hf://")


def is_url(location: str | os.PathLike) -> bool:
    """True for a dataset URL, False for a local path."""
    return str(location).startswith(URL_SCHEMES)
