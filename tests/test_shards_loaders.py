"""Every split reads exactly once per epoch through webdataset's WebLoader and timm's wds reader with 4
workers: splits get at least 16 shards (shards.manifest.shard_size), recorded in the manifest."""

import json
from collections import Counter

import pytest
from shards_fixtures import CLASSES, index_samples

from shards import DatasetWriter, load_manifest
from shards.manifest import MIN_SHARDS, shard_size
from shards.verify import verify_dataset

WORKERS = 4
SPLITS = {"train": 160, "test": 37}  # 160: 16 equal shards; 37: 19 shards of 2 and 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("loaders") / "ds"
    writer = DatasetWriter(
        out, {"kind": "index-images", "seed": 0}, CLASSES, SPLITS, samples_per_shard=10_000, min_shards=MIN_SHARDS
    )
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, index_samples(spec))
    writer.finalize()
    return out


@pytest.mark.parametrize(
    "count, per_shard, shards",
    [
        (10_000, 10_000, 16),
        (6_100, 10_000, 16),
        (37, 10_000, 19),
        (5, 10_000, 5),
        (5_000_000, 10_000, 500),
        (50_000, 10_000, 16),
    ],
)
def test_every_split_gets_at_least_16_shards_or_one_per_sample(count, per_shard, shards):
    size = shard_size(count, per_shard, MIN_SHARDS)
    assert -(-count // size) == shards


def test_the_manifest_records_the_rule_and_verify_accepts_it(dataset):
    manifest = load_manifest(dataset)
    assert manifest.min_shards == MIN_SHARDS
    assert [len(manifest.splits[s].shards) for s in SPLITS] == [16, 19]
    assert verify_dataset(dataset).ok


def _keys_counted(loader) -> Counter:
    return Counter(key for batch in loader for key in batch)


@pytest.mark.parametrize("split", list(SPLITS))
def test_webloader_with_4_workers_reads_every_sample_once(dataset, split):
    import webdataset as wds

    files = [str(dataset / f) for f in load_manifest(dataset).splits[split].shard_files()]
    ds = wds.WebDataset(files, shardshuffle=False, empty_check=True).to_tuple("__key__")
    loader = wds.WebLoader(ds, batch_size=None, num_workers=WORKERS)
    seen = _keys_counted(loader)
    assert len(seen) == SPLITS[split] and set(seen.values()) == {1}


@pytest.mark.parametrize("split, training", [("train", False), ("test", False), ("train", True)])
def test_timm_wds_reader_with_4_workers_reads_every_sample_once(dataset, split, training):
    """Eval mode reads every shard once. Training mode caps each worker at ceil(count / workers) samples
    (webdataset's with_epoch): exact when the shards split evenly among the workers, as 160 in 16 do."""
    import torch
    from timm.data import IterableImageDataset

    ds = IterableImageDataset(str(dataset), reader="wds/ours", split=split, is_training=training, target_transform=int)
    ds.set_loader_cfg(num_workers=WORKERS)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=WORKERS, collate_fn=lambda s: s[1])
    seen = Counter(int(target) for target in loader)
    expected = Counter((i * 7) % len(CLASSES) for i in range(SPLITS[split]))
    assert seen == expected
    info = json.loads((dataset / "_info.json").read_text())
    assert info["splits"][split]["num_samples"] == SPLITS[split]
