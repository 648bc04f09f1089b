"""`shards import` of plain WebDataset tars: integer `cls` labels named by --class-names (or @FILE), grey
images kept grey, colour ones as RGB, and a clear line when the names are missing or miscounted."""

import io

import numpy as np
import pytest
from PIL import Image
from shards_fixtures import SIZES, pixels, write_wds

from shards import iter_samples, load_manifest
from shards.cli import main


def read_split(root, split: str) -> list[tuple[np.ndarray, int]]:
    """(image as stored, label) of every sample of a split, read back from its shards."""
    files = [root / f for f in load_manifest(root).splits[split].shard_files()]
    return [(np.asarray(Image.open(io.BytesIO(image))), cls) for _, image, cls, _ in iter_samples(files, decode=False)]


@pytest.fixture(scope="module")
def grey_src(tmp_path_factory):
    return write_wds(tmp_path_factory.mktemp("wds") / "grey")


def test_wds_tars_import_with_class_names_and_stay_grey(grey_src, tmp_path):
    out = tmp_path / "ds"
    assert main(["import", str(grey_src), "--out", str(out), "--class-names", "ant,bee,cow"]) == 0
    m = load_manifest(out)
    assert m.class_names == ["ant", "bee", "cow"] and m.image_shape == [6, 5, 1]
    assert {s: i.count for s, i in m.splits.items()} == SIZES
    for split, count in SIZES.items():
        got = read_split(out, split)
        assert [cls for _, cls in got] == [i % 3 for i in range(count)]
        assert all(image.ndim == 2 and np.array_equal(image, pixels(split, i, "L")) for i, (image, _) in enumerate(got))


def test_class_names_from_a_file_keep_commas_and_colons(grey_src, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("a, with comma\nweird: v2 #1\n@src\n")
    assert (
        main(["import", str(grey_src), "--out", str(tmp_path / "ds"), "--class-names", f"@{names}", "--channels", "3"])
        == 0
    )
    m = load_manifest(tmp_path / "ds")
    assert m.class_names == ["a, with comma", "weird: v2 #1", "@src"] and m.image_shape == [6, 5, 3]


def test_colour_tars_stay_rgb(tmp_path):
    src = write_wds(tmp_path / "rgb", mode="RGB")
    assert main(["import", str(src), "--out", str(tmp_path / "ds"), "--class-names", "a,b,c"]) == 0
    image, _ = read_split(tmp_path / "ds", "test")[0]
    assert np.array_equal(image, pixels("test", 0, "RGB"))


@pytest.mark.parametrize(
    "names, message",
    [
        (None, "found 0 ClassLabel columns"),
        ("a,b", "label 2 is not in [0, 2)"),
    ],
)
def test_missing_or_too_few_class_names_is_one_clear_line(grey_src, tmp_path, capsys, names, message):
    argv = ["import", str(grey_src), "--out", str(tmp_path / "ds")] + (["--class-names", names] if names else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "ds" / "manifest.json").exists()
