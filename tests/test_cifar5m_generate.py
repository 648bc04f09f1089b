"""End to end: `generate` writes shards that load everywhere, relabel to their cls, and resume identically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar5m.cli import main
from cifar5m.label import Labeler, create_labeler_model, read_labeler_info
from shards import derive_seed, iter_samples, load_manifest
from shards.verify import verify_dataset

TRAIN, TEST, SHARD = 200, 60, 50  # 4 train shards + 2 test shards (the last holds 10)


def generate(out: Path, pipeline: Path, labeler: Path, *extra: str, train=TRAIN, test=TEST) -> int:
    return main(
        [
            "generate",
            "--model",
            str(pipeline),
            "--labeler",
            f"local-dir:{labeler}",
            "--out",
            str(out),
            "--train",
            str(train),
            "--test",
            str(test),
            "--shard-size",
            str(SHARD),
            "--min-shards",
            "1",
            "--batch-size",
            "16",
            *extra,
        ]
    )


def fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every data file plus the manifest and card: what must not depend on how a run went."""
    files = sorted((root / "data").glob("*.tar")) + [root / "manifest.json", root / "README.md"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_pipeline, tiny_labeler) -> Path:
    out = tmp_path_factory.mktemp("gen") / "cifar-like"
    assert generate(out, tiny_pipeline, tiny_labeler) == 0
    return out


def test_manifest_counts_and_schema(dataset):
    m = load_manifest(dataset)
    assert {s: i.count for s, i in m.splits.items()} == {"train": TRAIN, "test": TEST}
    assert [e.samples for e in m.splits["train"].shards] == [50, 50, 50, 50]
    assert [e.samples for e in m.splits["test"].shards] == [50, 10]
    assert m.image_shape == [32, 32, 3] and m.image_ext == "png"
    assert m.class_names[:2] == ["airplane", "automobile"] and len(m.class_names) == 10
    assert m.json_schema == {"index": "int", "max_prob": "float", "probs": "list[float]", "seed": "int"}
    assert m.config["generator"]["steps"] == 4 and m.config["generator"]["sampler"] == "ddpm"
    assert sum(m.splits["train"].label_histogram) == TRAIN
    assert verify_dataset(dataset, decode=True).ok
    assert {p.name for p in (dataset / "extras").iterdir()} == {
        "samples_per_class.png",
        "class_histogram.png",
        "confidence_histogram.png",
        "summary.json",
    }


def test_json_fields_follow_from_seed_split_index(dataset):
    for split, shard in [("train", "train-000003"), ("test", "test-000001")]:
        for key, _, cls, meta in iter_samples([dataset / "data" / f"{shard}.tar"]):
            assert meta["index"] == int(key)
            assert meta["seed"] == derive_seed(0, split, int(key))
            assert len(meta["probs"]) == 10 and meta["max_prob"] == max(meta["probs"])
            assert all(float(np.float16(p)) == p for p in meta["probs"])  # fp16 precision
            assert cls == int(np.argmax(meta["probs"])) or meta["probs"][cls] == meta["max_prob"]


def test_relabelling_the_stored_images_reproduces_cls(dataset, tiny_labeler):
    labeler = Labeler(create_labeler_model(read_labeler_info(f"local-dir:{tiny_labeler}", None), 10), "cpu")
    samples = list(iter_samples(sorted((dataset / "data").glob("*.tar"))))
    images = torch.from_numpy(np.stack([s[1] for s in samples]))
    probs = labeler(images)
    assert probs.argmax(1).tolist() == [s[2] for s in samples]
    stored = torch.tensor([s[3]["probs"] for s in samples])
    assert torch.allclose(probs, stored, atol=1e-3)
    assert len(set(s[2] for s in samples)) >= 3  # the fixture labeler does tell images apart


def test_loads_in_hf_datasets_and_webdataset(dataset):
    import webdataset as wds
    from datasets import load_dataset

    ds = load_dataset(str(dataset), split="test")
    assert len(ds) == TEST
    assert ds.features["cls"].names[:3] == ["airplane", "automobile", "bird"]
    row = ds[0]
    assert row["png"].size == (32, 32) and row["json"]["index"] == 0
    urls = [str(p) for p in sorted((dataset / "data").glob("train-*.tar"))]
    keys = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False).decode("rgb8")]
    assert keys == [f"{i:09d}" for i in range(TRAIN)]


def test_same_seed_same_bytes_other_seed_other_images(dataset, tmp_path, tiny_pipeline, tiny_labeler):
    assert generate(tmp_path / "again", tiny_pipeline, tiny_labeler) == 0
    assert fingerprint(tmp_path / "again") == fingerprint(dataset)
    assert generate(tmp_path / "seed1", tiny_pipeline, tiny_labeler, "--seed", "1", train=SHARD, test=0) == 0
    first = next(iter_samples([tmp_path / "seed1/data/train-000000.tar"]))
    assert not np.array_equal(first[1], next(iter_samples([dataset / "data/train-000000.tar"]))[1])


def test_shard_ranges_then_final_run_equal_one_run(dataset, tmp_path, tiny_pipeline, tiny_labeler, capsys):
    out = tmp_path / "array"
    assert generate(out, tiny_pipeline, tiny_labeler, "--shards", "4:6") == 0  # the test shards
    assert "manifest.json not written yet: 4 shards missing" in capsys.readouterr().out
    assert not (out / "manifest.json").exists() and len(list((out / "data").glob("*.tar"))) == 2
    assert generate(out, tiny_pipeline, tiny_labeler, "--shards", "0:2", "--batch-size", "16") == 0
    # a worker killed mid-shard leaves a temp file; a truncated shard fails its hash: both are redone
    (out / ".shards/tmp/train-000002.host-123.tar").write_bytes(b"partial")
    (out / "data/train-000000.tar").write_bytes((out / "data/train-000000.tar").read_bytes()[:1000])
    assert generate(out, tiny_pipeline, tiny_labeler) == 0
    assert fingerprint(out) == fingerprint(dataset)
    assert not list((out / ".shards/tmp").iterdir())


def test_out_holding_another_dataset_is_refused(dataset, tiny_pipeline, tiny_labeler, capsys):
    assert generate(dataset, tiny_pipeline, tiny_labeler, "--seed", "7") == 2
    assert "another config" in capsys.readouterr().err
    (dataset.parent / "foreign").mkdir()
    (dataset.parent / "foreign/notes.txt").write_text("mine")
    assert generate(dataset.parent / "foreign", tiny_pipeline, tiny_labeler) == 2
    assert "not empty and not a dataset" in capsys.readouterr().err


def test_digits_model_with_its_labelers_names(tmp_path, tiny_digits_pipeline, tiny_digits_labeler, tiny_labeler):
    out = tmp_path / "digits"
    assert (
        generate(out, tiny_digits_pipeline, tiny_digits_labeler, "--sampler", "dpmpp", "--steps", "3", train=60, test=0)
        == 0
    )
    m = load_manifest(out)
    assert m.image_shape == [8, 8, 1] and m.class_names == [str(d) for d in range(10)]
    # a 3-channel labeler reads the 1-channel images too; --class-names overrides the defaults
    names = ",".join(f"d{d}" for d in range(10))
    assert (
        generate(
            tmp_path / "rgb-labeler",
            tiny_digits_pipeline,
            tiny_labeler,
            "--class-names",
            names,
            "--sampler",
            "ddim",
            "--steps",
            "2",
            train=20,
            test=0,
        )
        == 0
    )
    assert load_manifest(tmp_path / "rgb-labeler").class_names == names.split(",")


def test_dry_run_writes_nothing(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    assert generate(tmp_path / "dry", tiny_pipeline, tiny_labeler, "--dry-run") == 0
    out = capsys.readouterr().out
    config = json.loads(out[: out.rindex("}") + 1])
    assert config["dataset_config"]["generator"]["noise"] and config["image_shape"] == [3, 32, 32]
    assert "6 shards planned" in out and not (tmp_path / "dry").exists()


@pytest.mark.slow
def test_workers_write_the_bytes_of_one_process(dataset, tmp_path, tiny_pipeline, tiny_labeler):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a caller's thread count must not reach the bytes: every runner fixes its own
    try:
        assert generate(tmp_path / "workers", tiny_pipeline, tiny_labeler, "--workers", "2") == 0
        assert generate(tmp_path / "two-threads", tiny_pipeline, tiny_labeler, train=SHARD, test=0) == 0
        assert torch.get_num_threads() == 2  # the in-process runner restored the caller's count
    finally:
        torch.set_num_threads(threads)
    assert fingerprint(tmp_path / "workers") == fingerprint(dataset)
    first = "data/train-000000.tar"
    assert (
        hashlib.sha256((tmp_path / "two-threads" / first).read_bytes()).hexdigest()
        == fingerprint(dataset)["train-000000.tar"]
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--workers", "0"), "--workers=0: must be >= 1"),
        (("--workers", "2", "--ray"), "--workers 2 with --ray: Ray starts its own workers"),
        (("--workers", "2", "--device", "cuda:1"), "--device cuda:1 with --workers 2: worker i uses cuda:i"),
        pytest.param(
            ("--workers", "2", "--device", "cuda"),
            "--device=cuda: no CUDA device here; use --device cpu or auto",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA"),
        ),
    ],
)
def test_bad_workers_are_refused_before_anything_is_written(
    tmp_path, tiny_pipeline, tiny_labeler, capsys, extra, message
):
    assert generate(tmp_path / "out", tiny_pipeline, tiny_labeler, *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_generated_croissant_validates_and_loads_equal_records(dataset, tmp_path):
    pytest.importorskip("mlcroissant", reason="mlcroissant is not installed (pip install '.[croissant]')")
    from shards_fixtures import check_equal

    check_equal(dataset, tmp_path / "croissant-cache")
