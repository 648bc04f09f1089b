"""The dataset format shared by the toolkit: write, read, verify, card, publish and stream WebDataset shards.

See FORMAT.md beside this file for the layout and the API. Heavy imports (torch, huggingface_hub) are
deferred to the modules that need them, so `import shards` stays fast.
"""
from shards.cache import SplitArrays, load_split  # noqa: E402
from shards.card import CardInfo  # noqa: E402
from shards.errors import ShardsError, ToolkitError  # noqa: E402
from shards.manifest import Manifest, load_manifest  # noqa: E402
from shards.naming import derive_seed  # noqa: E402
from shards.read import iter_samples, iter_shard  # noqa: E402
from shards.remote import resolve_dataset  # noqa: E402
from shards.version import __version__  # noqa: F401 (the toolkit version, re-exported)
from shards.writer import DatasetWriter, ShardSpec, ShardStats  # noqa: E402


def __getattr__(name):
    # StreamingBatches subclasses torch's IterableDataset: import torch only when it is asked for.
    if name == "StreamingBatches":
        from shards.stream import StreamingBatches

        return StreamingBatches
    raise AttributeError(name)


__all__ = [
    "ShardsError", "ToolkitError", "derive_seed", "Manifest", "load_manifest", "CardInfo", "DatasetWriter", "ShardSpec", "ShardStats",
    "iter_samples", "iter_shard", "SplitArrays", "load_split", "resolve_dataset", "StreamingBatches",
]
