"""The shard writer: deterministic bytes, layout, validation, and that other readers read what we write."""

import hashlib
import json
import tarfile

import numpy as np
import pytest
from shards_fixtures import CLASSES, build, index_image, index_samples, label_of, make_writer

from shards import ShardsError, iter_samples, load_manifest


def shard_hashes(root):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "data").glob("*.tar"))}


def test_same_input_gives_identical_bytes(tmp_path):
    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    assert shard_hashes(a) == shard_hashes(b)
    assert len(shard_hashes(a)) == 4  # 250 train in shards of 100 -> 3, 50 test -> 1
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    assert (a / "README.md").read_text() == (b / "README.md").read_text()


def test_layout_members_and_manifest(tmp_path):
    root = build(tmp_path / "ds")
    with tarfile.open(root / "data/train-000001.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["000000100.png", "000000100.cls", "000000100.json"]
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.mode == 0o444 for m in members)
        assert not any(m.pax_headers for m in members)
        assert tar.extractfile(members[1]).read() == str(label_of(100)).encode()
    m = load_manifest(root)
    assert [e.samples for e in m.splits["train"].shards] == [100, 100, 50]
    assert [e.first_index for e in m.splits["train"].shards] == [0, 100, 200]
    assert m.splits["train"].label_histogram == np.bincount([label_of(i) for i in range(250)], minlength=10).tolist()
    assert m.class_names == CLASSES and m.image_shape == [8, 8, 3]
    assert m.json_schema == {"index": "int", "score": "float", "source": "str"}
    info = json.loads((root / "_info.json").read_text())
    assert info["splits"]["train"]["shard_lengths"] == [100, 100, 50]
    assert not list((root / "data").glob(".*")), "no temporary files may be left in data/"


def test_round_trip_pixels_labels_and_json(tmp_path):
    root = build(tmp_path / "ds", channels=1)
    m = load_manifest(root)
    seen = list(iter_samples(root / e.file for e in m.splits["train"].shards))
    assert len(seen) == 250
    for key, image, cls, meta in seen:
        i = int(key)
        assert np.array_equal(image, index_image(i, channels=1)) and cls == label_of(i) and meta["index"] == i


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"image": np.zeros((8, 8, 3), np.uint8), "cls": 10}, "cls=10 must be an integer in [0, 10)"),
        (
            {"image": np.zeros((8, 8, 3), np.uint8), "cls": 1, "json": {"index": "x", "score": 0.1, "source": "a"}},
            "every sample needs the same fields",
        ),
        ({"image": np.zeros((8, 8, 3), np.uint8), "cls": 1}, "every sample needs the same fields"),
        (
            {"image": np.zeros((8, 8, 3), np.float32), "cls": 1, "json": {"index": 1, "score": 0.1, "source": "a"}},
            "must be uint8",
        ),
        (
            {
                "image": np.zeros((8, 8, 3), np.uint8),
                "cls": 1,
                "json": {"index": 1, "score": 0.1, "source": "a"},
                "Bad.Field": b"x",
            },
            "[a-z0-9_-]",
        ),
    ],
)
def test_inconsistent_or_bad_samples_fail_and_leave_no_shard(tmp_path, bad, message):
    writer = make_writer(tmp_path / "ds")
    writer.prepare()
    spec = writer.pending()[0]

    def samples():
        good = index_samples(spec)
        yield next(good)
        yield bad

    with pytest.raises(ShardsError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        writer.write_shard(spec, samples())
    assert not (tmp_path / "ds" / spec.relpath).exists()
    assert not list((tmp_path / "ds/.shards/tmp").iterdir())
    assert writer.finalize() is None and not (tmp_path / "ds/manifest.json").exists()


def test_wrong_sample_count_is_refused(tmp_path):
    writer = make_writer(tmp_path / "ds")
    writer.prepare()
    spec = writer.pending()[0]
    with pytest.raises(ShardsError, match="got 99 samples, planned 100"):
        writer.write_shard(spec, list(index_samples(spec))[:99])
    assert not (tmp_path / "ds" / spec.relpath).exists()


@pytest.mark.parametrize("split", ["Train", "tr.ain", "a b"])
def test_bad_split_names(tmp_path, split):
    from shards import DatasetWriter

    with pytest.raises(ShardsError, match="no dots"):
        DatasetWriter(tmp_path, {}, CLASSES, {split: 10}, 5)


def test_other_config_refused_unless_overwrite(tmp_path):
    build(tmp_path / "ds")
    other = make_writer(tmp_path / "ds", train=300)
    with pytest.raises(ShardsError, match=r"another config \(splits.train: 250 -> 300\)"):
        other.prepare()
    make_writer(tmp_path / "ds", train=300, overwrite=True).prepare()
    assert not (tmp_path / "ds/manifest.json").exists()


def test_foreign_folder_refused(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds/notes.txt").write_text("mine")
    with pytest.raises(ShardsError, match="not empty"):
        make_writer(tmp_path / "ds").prepare()


def test_hf_datasets_webdataset_and_timm_read_everything(tmp_path):
    datasets = pytest.importorskip("datasets")
    root = build(tmp_path / "ds")
    ds = datasets.load_dataset(str(root))
    assert ds["train"].num_rows == 250 and ds["test"].num_rows == 50
    assert ds["train"].features["cls"].names == CLASSES
    row = ds["train"][123]
    assert row["cls"] == label_of(123) and row["json"]["index"] == 123 and row["__key__"] == "000000123"
    assert np.array_equal(np.asarray(row["png"]), index_image(123))
    plain = datasets.load_dataset("webdataset", data_files={"train": str(root / "data/train-*.tar")}, split="train")
    assert sorted(plain["cls"]) == sorted(label_of(i) for i in range(250))

    import webdataset as wds

    seen = list(wds.WebDataset(str(root / "data/train-{000000..000002}.tar"), shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in seen] == [f"{i:09d}" for i in range(250)]

    import timm.data

    reader = timm.data.create_dataset("wds/index", root=str(root), split="train", is_training=False)
    targets = [int(t) for _, t in reader]
    assert len(reader) == 250 and targets == [label_of(i) for i in range(250)]


def finish_again(root):
    """Re-run the build on a complete dataset: nothing pending, the manifest and card assembled again."""
    writer = make_writer(root)
    writer.prepare()
    assert writer.pending() == []
    return writer.finalize()


def test_a_hand_edited_card_is_kept_on_rerun_and_said_so(tmp_path, caplog):
    root = build(tmp_path / "ds")
    card = (root / "README.md").read_bytes()
    (root / ".shards" / "card.json").unlink()  # as in a dataset made before cards were recorded
    with caplog.at_level("WARNING", logger="shards.writer"):
        finish_again(root)
    assert (root / "README.md").read_bytes() == card and not caplog.records  # the card due: ours
    edited = card.replace(b"## Load it", b"My notes on this dataset.\n\n## Load it")
    (root / "README.md").write_bytes(edited)
    with caplog.at_level("WARNING", logger="shards.writer"):
        assert finish_again(root) is not None
    assert (root / "README.md").read_bytes() == edited
    assert [r.getMessage() for r in caplog.records] == [
        f"{root / 'README.md'}: edited since this toolkit wrote it (or not written by it): kept as it is; delete "
        "it and re-run the same command to have the dataset card written again"
    ]
    (root / "README.md").unlink()
    finish_again(root)
    assert (root / "README.md").read_bytes() == card
