"""Where the toolkit keeps what it derives from datasets: the user cache directory, never a dataset folder.

    root = user_cache_root()        # $DEEPBOOT_CACHE, else $XDG_CACHE_HOME/deep-bootstrap, else ~/.cache/...
    decoded_cache_dir(manifest)     # root/decoded/<config hash>: shards.cache's decoded arrays
    root / "remote"                 # shards.remote's downloads

A dataset folder holds the dataset and nothing else, so it can be read-only, shared between users, or
uploaded as it is. The layout follows the XDG base-directory spec (caches under $XDG_CACHE_HOME, default
~/.cache), as huggingface_hub does with HF_HOME; one variable moves the whole cache, as HF_HOME does.
"""

from __future__ import annotations

import os
from pathlib import Path

from shards.manifest import Manifest

CACHE_ENV = "DEEPBOOT_CACHE"


def user_cache_root() -> Path:
    """$DEEPBOOT_CACHE, else $XDG_CACHE_HOME/deep-bootstrap, else ~/.cache/deep-bootstrap."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deep-bootstrap"


def decoded_cache_dir(manifest: Manifest) -> Path:
    """The decoded cache of one dataset, keyed by its config hash: copies of a dataset share it, and the
    file names inside are keyed by the split's shard sha256s, so a changed dataset never reads stale rows."""
    return user_cache_root() / "decoded" / manifest.config_hash[:16]
