"""Reading back: the decoded cache, the streaming reader (ranks x workers, epochs) and URL datasets."""

import functools
import http.server
import threading

import numpy as np
import pytest
import torch
from shards_fixtures import build, index_image, label_of
from torch.utils.data import DataLoader

from shards import ShardsError, StreamingBatches, load_manifest, load_split, resolve_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build(tmp_path_factory.mktemp("r") / "ds", train=600, test=50, per_shard=100)


def urls(root, split="train"):
    return [str(root / e.file) for e in load_manifest(root).splits[split].shards]


def test_decoded_cache_round_trip_and_reuse(dataset, tmp_path):
    arrays = load_split(dataset, "train", cache_dir=tmp_path / "c", num_workers=2, progress=False)
    assert arrays.images.shape == (600, 8, 8, 3) and arrays.images.dtype == np.uint8
    assert all(np.array_equal(arrays.images[i], index_image(i)) for i in (0, 99, 100, 599))
    assert arrays.labels.tolist() == [label_of(i) for i in range(600)]
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    again = load_split(dataset, "train", cache_dir=tmp_path / "c", progress=False)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == files
    assert np.array_equal(np.asarray(again.images), np.asarray(arrays.images))


def test_cache_is_keyed_by_shard_hashes(tmp_path):
    root = build(tmp_path / "ds", train=100, test=10)
    first = load_split(root, "train", cache_dir=tmp_path / "c", progress=False)
    from shards_fixtures import CLASSES

    from shards import DatasetWriter

    writer = DatasetWriter(root, {"kind": "zeros"}, CLASSES, {"train": 100, "test": 10}, 100, overwrite=True)
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, [{"image": np.zeros((8, 8, 3), np.uint8), "cls": 0}] * spec.count)
    writer.finalize()
    second = load_split(root, "train", cache_dir=tmp_path / "c", progress=False)
    assert second.images.sum() == 0 and first.images.sum() > 0


def test_cache_build_refuses_a_corrupt_shard(tmp_path):
    root = build(tmp_path / "ds", train=200, test=10)
    path = root / "data/train-000001.tar"
    data = bytearray(path.read_bytes())
    data[600] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ShardsError, match="train-000001.tar: corrupt: sha256"):
        load_split(root, "train", cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").glob("*.npy")), "no cache may be left from corrupt data"


def test_stream_covers_every_sample_once_across_ranks_and_workers(dataset):
    seen = []
    for rank in range(2):
        stream = StreamingBatches(urls(dataset), batch_size=32, seed=3, epoch=1, rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        for batch in loader:
            assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (8, 8, 3)
            for image, cls, index in zip(batch["image"], batch["cls"], batch["index"]):
                assert np.array_equal(image.numpy(), index_image(int(index))) and int(cls) == label_of(int(index))
            seen += batch["index"].tolist()
    assert sorted(seen) == list(range(600))


def test_stream_shard_order_depends_on_seed_and_epoch(dataset):
    def order(seed, epoch):
        return StreamingBatches(urls(dataset), 8, seed=seed, epoch=epoch).shards_for(0, 1)

    first = order(0, 0)
    assert sorted(first) == sorted(urls(dataset))  # every shard once
    assert StreamingBatches(urls(dataset), 32, seed=0, epoch=0).shards_for(0, 1) == first  # batch size plays no part
    assert first != order(0, 1) and first != order(1, 0)
    halves = StreamingBatches(urls(dataset), 8, seed=0, epoch=0)
    assert halves.shards_for(0, 2) + halves.shards_for(1, 2) == first[0::2] + first[1::2]  # readers split one order


def test_stream_refuses_too_few_shards(dataset):
    stream = StreamingBatches(urls(dataset, "test"), 8, world_size=2)
    with pytest.raises(ShardsError, match="every reader needs at least one shard"):
        list(stream)


def test_http_dataset_is_downloaded_verified_and_cached(dataset, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dataset.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{dataset.name}"
        local = resolve_dataset(url, cache_dir=tmp_path / "remote")
        assert load_manifest(local).to_dict() == load_manifest(dataset).to_dict() == load_manifest(url).to_dict()
        assert (local / "data/train-000005.tar").read_bytes() == (dataset / "data/train-000005.tar").read_bytes()
        arrays = load_split(local, "test", progress=False)
        assert arrays.labels.tolist() == [label_of(i) for i in range(50)]
        with pytest.raises(ShardsError, match="HTTP 404 .*not found; check the repo id or URL"):
            resolve_dataset(f"http://127.0.0.1:{server.server_port}/nothing-here", cache_dir=tmp_path / "r2")
    finally:
        server.shutdown()


def test_missing_and_incomplete_datasets_are_clear_errors(tmp_path):
    with pytest.raises(ShardsError, match="no such dataset folder"):
        resolve_dataset(tmp_path / "absent")
    (tmp_path / "half").mkdir()
    with pytest.raises(ShardsError, match="no manifest.json, so the dataset is incomplete"):
        load_split(tmp_path / "half", "train")
