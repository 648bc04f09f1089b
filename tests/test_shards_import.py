"""`python -m shards import`: a local parquet folder (a `datasets` repo layout) and a SPLIT/CLASS image folder,
built in tmp_path; images whose pixels encode their row so every read-back can be checked."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shards import iter_samples, load_manifest
from shards.cli import main


def pixel_image(row: int) -> np.ndarray:
    """4x4 RGB image whose channels encode (row % 256, row // 256, 7)."""
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = row % 256, row // 256, 7
    return image


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory) -> Path:
    """data/train-*.parquet (13 rows) and data/test-*.parquet (5 rows) with Image + ClassLabel features."""
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as HFImage

    root = tmp_path_factory.mktemp("parquet")
    features = Features(
        {
            "name": HFImage(),
            "idx": __import__("datasets").Value("int64"),
            "fine": ClassLabel(names=["ant", "bee", "cow"]),
        }
    )
    (root / "data").mkdir()
    for split, n in [("train", 13), ("test", 5)]:
        Dataset.from_dict(
            {
                "name": [Image.fromarray(pixel_image(r)) for r in range(n)],
                "idx": list(range(n)),
                "fine": [(r * 2) % 3 for r in range(n)],
            },
            features=features,
        ).to_parquet(root / "data" / f"{split}-00000-of-00001.parquet")
    return root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """train/{cat,dog}/*.png (3 + 2) and test/{cat,dog}/*.png (1 + 1); row r's pixels encode r."""
    root = tmp_path_factory.mktemp("imagefolder")
    layout = {"train": ["cat", "cat", "cat", "dog", "dog"], "test": ["cat", "dog"]}
    for split, classes in layout.items():
        for r, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixel_image(r)).save(root / split / name / f"{r:03d}.png")
    return root


CARD = """---
dataset_info:
  features:
  - name: name
    dtype: image
  - name: idx
    dtype: int64
  - name: fine
    dtype:
      class_label:
        names:
          '0': ant
          '1': bee
          '2': cow
  splits:
  - name: train
    num_examples: {train}
  - name: test
    num_examples: 5
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---
"""


def hub_repo(parquet_folder: Path, root: Path, train: int) -> Path:
    """The layout of a Hub dataset repo such as uoft-cs/cifar10: parquet files plus a card whose YAML
    declares the features and the split sizes (so rows need not be counted)."""
    shutil.copytree(parquet_folder / "data", root / "data")
    (root / "README.md").write_text(CARD.format(train=train))
    return root


def sha256s(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").glob("*.tar"))}


def test_parquet_folder_imports_every_split_with_labels_classes_and_pixels(parquet_folder, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["import", str(parquet_folder), "--out", str(out), "--shard-size", "4", "--min-shards", "1"]) == 0
    m = load_manifest(out)
    assert m.class_names == ["ant", "bee", "cow"]
    assert {s: i.count for s, i in m.splits.items()} == {"train": 13, "test": 5}
    assert len(m.splits["train"].shards) == 4  # 4 + 4 + 4 + 1
    for split, n in [("train", 13), ("test", 5)]:
        samples = list(iter_samples(out / f for f in m.splits[split].shard_files()))
        assert [meta["row"] for _, _, _, meta in samples] == list(range(n))
        assert [cls for _, _, cls, _ in samples] == [(r * 2) % 3 for r in range(n)]
        for r, (_, image, _, _) in enumerate(samples):
            np.testing.assert_array_equal(image, pixel_image(r))
    assert m.splits["train"].label_histogram == [5, 4, 4]
    assert "'fine'" in capsys.readouterr().out


def test_import_is_deterministic_and_resumes_to_the_same_bytes(parquet_folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["import", str(parquet_folder), "--out", str(a), "--shard-size", "4"]) == 0
    assert main(["import", str(parquet_folder), "--out", str(b), "--shard-size", "4"]) == 0
    assert sha256s(a) == sha256s(b)
    # Interrupted run: one shard lost, one damaged, manifest gone -> a re-run repairs exactly those.
    (b / "data" / "train-000001.tar").unlink()
    (b / "data" / "train-000002.tar").write_bytes(b"garbage")
    (b / "manifest.json").unlink()
    assert main(["import", str(parquet_folder), "--out", str(b), "--shard-size", "4"]) == 0
    assert sha256s(a) == sha256s(b)
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()


def test_image_folder_keeps_splits_and_class_folders(image_folder, tmp_path):
    out = tmp_path / "ds"
    assert main(["import", str(image_folder), "--out", str(out), "--splits", "train"]) == 0
    m = load_manifest(out)
    assert m.class_names == ["cat", "dog"] and list(m.splits) == ["train"]
    samples = list(iter_samples(out / f for f in m.splits["train"].shard_files()))
    assert [cls for _, _, cls, _ in samples] == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(samples[4][1], pixel_image(4))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image-column", "nope"], "--image-column 'nope' is not a column (columns: name, idx, fine)"),
        (["--label-column", "idx"], "--label-column 'idx' is Value('int64'), not a ClassLabel"),
        (["--splits", "validation"], "no split 'validation' (splits: train, test); fix --splits"),
    ],
)
def test_bad_columns_and_splits_are_one_line_errors(parquet_folder, tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    assert main(["import", str(parquet_folder), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_source_names_it(tmp_path, capsys):
    assert main(["import", str(tmp_path / "nowhere"), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert "nowhere: no such folder (and not a Hub id ORG/NAME); check the path" in err and err.count("\n") == 1


def test_a_hub_style_repo_folder_takes_split_sizes_from_its_card(parquet_folder, tmp_path):
    repo = hub_repo(parquet_folder, tmp_path / "repo", train=13)
    out = tmp_path / "ds"
    assert main(["import", str(repo), "--out", str(out), "--shard-size", "4", "--min-shards", "1"]) == 0
    assert {s: i.count for s, i in load_manifest(out).splits.items()} == {"train": 13, "test": 5}
    reference = tmp_path / "plain"
    assert main(["import", str(parquet_folder), "--out", str(reference), "--shard-size", "4", "--min-shards", "1"]) == 0
    assert sha256s(out) == sha256s(reference)  # same rows, same bytes, whichever way the count was found


@pytest.mark.parametrize(
    "stated, message",
    [
        (15, "split train: ended after 13 rows, but its dataset card states 15"),
        (11, "split train: more rows than the 11 its dataset card states"),
    ],
)
def test_a_card_that_misstates_the_rows_is_an_error(parquet_folder, tmp_path, capsys, stated, message):
    repo = hub_repo(parquet_folder, tmp_path / "repo", train=stated)
    assert main(["import", str(repo), "--out", str(tmp_path / "ds"), "--shard-size", "4"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last.startswith("error: ") and message in last
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_a_stream_that_breaks_midway_resumes_to_the_uninterrupted_bytes(parquet_folder, tmp_path):
    import dataclasses

    from shards.errors import ShardsError
    from shards.importer import import_dataset, open_source

    src = open_source(str(parquet_folder))

    def breaks_after(stream, n):
        for i, row in enumerate(stream):
            if i == n:
                raise ConnectionError("connection reset by peer")
            yield row

    broken = dataclasses.replace(
        src, splits={"train": breaks_after(src.splits["train"], 10), "test": src.splits["test"]}
    )
    out, reference = tmp_path / "ds", tmp_path / "ref"
    with pytest.raises(ShardsError, match="import stopped .*connection reset by peer.*re-run the same command"):
        import_dataset(broken, out, samples_per_shard=4, min_shards=1)
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-000000.tar", "train-000001.tar"]
    assert not list((out / ".shards" / "tmp").iterdir())  # the half-written shard is gone
    import_dataset(src, out, samples_per_shard=4, min_shards=1)
    import_dataset(src, reference, samples_per_shard=4, min_shards=1)
    assert sha256s(out) == sha256s(reference)
