"""The dataset format shared by the toolkit: write, read, verify, card, publish and stream WebDataset shards.

See FORMAT.md beside this file for the layout and the API. Heavy imports (torch, huggingface_hub) are
deferred to the modules that need them, so `import shards` stays fast.
"""

from shards.cache import SplitArrays, load_split
from shards.card import CardInfo, License
from shards.errors import ShardsError, ToolkitError
from shards.importer import import_dataset, open_source
from shards.manifest import Manifest, load_manifest
from shards.naming import derive_seed
from shards.read import iter_samples, iter_shard
from shards.remote import publish, resolve_dataset
from shards.runtime import resolve_device, start_ray
from shards.verify import VerifyReport, verify_dataset
from shards.version import __version__
from shards.writer import DatasetWriter, ShardSpec, ShardStats


def __getattr__(name):
    # StreamingBatches subclasses torch's IterableDataset: import torch only when it is asked for.
    if name == "StreamingBatches":
        from shards.stream import StreamingBatches

        return StreamingBatches
    raise AttributeError(name)


__all__ = [
    "ShardsError",
    "ToolkitError",
    "__version__",
    # write: a dataset of shards, committed one by one, then its manifest
    "DatasetWriter",
    "ShardSpec",
    "ShardStats",
    "CardInfo",
    "License",
    "derive_seed",
    # read: the manifest, samples, decoded arrays, a stream (torch)
    "Manifest",
    "load_manifest",
    "iter_samples",
    "iter_shard",
    "SplitArrays",
    "load_split",
    "StreamingBatches",
    # the tool's entry calls: import, verify, publish, fetch
    "import_dataset",
    "open_source",
    "verify_dataset",
    "VerifyReport",
    "publish",
    "resolve_dataset",
    # where work runs (every tool)
    "resolve_device",
    "start_ray",
]
