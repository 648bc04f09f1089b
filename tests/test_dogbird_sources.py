"""dogbird.classes and dogbird.sources: the 122 classes, ids, and clear errors for sources that cannot work."""

import shutil

import pytest
from dogbird_fixtures import fake_imagenet, write_folder

from dogbird.classes import dogbird_classes, imagenet_wnids
from dogbird.cli import main
from dogbird.sources import source_id


def test_the_paper_classes():
    classes = dogbird_classes()
    dogs = sorted(c.index for c in classes.values() if c.label == 0)
    birds = sorted(c.index for c in classes.values() if c.label == 1)
    assert (len(dogs), len(birds)) == (63, 59) and dogs == list(range(159, 222))
    assert birds == [*range(7, 25), *range(80, 101), *range(127, 147)]
    # dogs that are not hunting dogs: Chihuahua, German shepherd, Shetland sheepdog
    assert not {"n02085620", "n02106662", "n02105855"} & set(classes)
    assert len(imagenet_wnids()) == 1000 and imagenet_wnids()[160] == "n02088094"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("n02088094_1234.JPEG", "n02088094_1234"),
        ("n02088094/n02088094_1234_n02088094.JPEG", "n02088094_1234"),  # the Hub's train file names
        ("ILSVRC2012_val_00000123_n01751748.JPEG", "ILSVRC2012_val_00000123"),
        ("../../etc/passwd", "passwd"),  # a name from a file or server never becomes a path
        ("odd name (1).jpg", "oddname1"),
    ],
)
def test_source_ids(name, expected):
    assert source_id(name) == expected


@pytest.fixture(scope="module")
def images():
    return fake_imagenet(train_per_class=1, val_per_class=1)


def run(source, out, *extra) -> int:
    return main(["build", "--imagenet", str(source), "--out", str(out), "--allow-missing-classes", *extra])


@pytest.mark.parametrize(
    "case, message",
    [
        ("flat-val-unlabelled", "flat val images but no labels; put Kaggle's LOC_val_solution.csv or the devkit"),
        ("devkit-without-meta", "meta.mat: missing; the devkit's ground truth IDs need its meta.mat"),
        ("no-val", "no val/ folder; DogBird takes its train split from ImageNet train and its test split from"),
    ],
)
def test_sources_that_cannot_work(case, message, images, tmp_path, capsys):
    val = {"flat-val-unlabelled": "flat", "devkit-without-meta": "devkit", "no-val": "wnid"}[case]
    root = write_folder(tmp_path / "src", images, val=val)
    if case == "devkit-without-meta":
        (root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat").unlink()
    if case == "no-val":
        shutil.rmtree(root / "val")
    assert run(root, tmp_path / "out") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--quality", "0"], "--quality=0: must be in 1..100"),
        (
            ["--size", "64", "--center-crop", "128"],
            "--center-crop=128: larger than --size=64; the crop is taken from "
            "the resized image, so give --size >= the crop",
        ),
        (
            ["--size", "0", "--center-crop", "8"],
            "--center-crop=8: larger than --size=0; the crop is taken from "
            "the resized image, so give --size >= the crop",
        ),
        (["--workers", "0"], "--workers=0: must be >= 1"),
        (["--res", "0"], "--res=0: must be >= 1 pixel"),
    ],
)
def test_bad_flags(flags, message, images, tmp_path, capsys):
    assert run(write_folder(tmp_path / "src", images), tmp_path / "out", *flags) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {message}"


def test_a_tar_that_breaks_off_is_a_clear_error(tmp_path, capsys):
    from dogbird_fixtures import write_wds

    root = write_wds(tmp_path / "wds", fake_imagenet(train_per_class=1, val_per_class=1))
    tar = root / "imagenet1k-validation-00.tar"
    tar.write_bytes(tar.read_bytes()[:1300])  # cut inside a member
    assert run(root, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {tar}: unreadable WebDataset tar (") and "Traceback" not in err


def parquet_with(root, label, image):
    """A Hub-layout parquet source whose one validation row has this label and image value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table({"image": [image], "label": [label]}), root / "data" / "validation-00000-of-00001.parquet")
    return root


@pytest.mark.parametrize(
    "label, image, message",
    [
        (
            "160",
            {"bytes": b"jpeg", "path": "a.JPEG"},
            "row 0: label '160' is a str, not an ImageNet class index (0-999)",
        ),
        (
            160,
            b"jpeg bytes",
            "row 0: its image is a bytes value, where an ImageNet parquet file has image {bytes, path}",
        ),
        (160, None, "row 0: its image is null, where an ImageNet parquet file has image {bytes, path}"),
        (160, {"bytes": None, "path": "a.JPEG"}, "row 0: its image is null, where an ImageNet parquet file"),
    ],
)
def test_parquet_rows_of_the_wrong_kind_are_one_line(tmp_path, capsys, label, image, message):
    root = parquet_with(tmp_path / "src", label, image)
    assert run(root, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {root / 'data' / 'validation-00000-of-00001.parquet'}: {message}")
    assert not (tmp_path / "out" / "manifest.json").exists()


WNID_FIRST = "does not start with a wnid (nNNNNNNNN)"


@pytest.mark.parametrize(
    "content, message",
    [
        ("ImageId,PredictionString\nILSVRC2012_val_00000001,\n", f"line 2: PredictionString '' {WNID_FIRST}"),
        ("ImageId,PredictionString\nILSVRC2012_val_00000001\n", f"line 2: PredictionString None {WNID_FIRST}"),
        ("id,label\nILSVRC2012_val_00000001,n02088094\n", "header ['id', 'label'], not ImageId,PredictionString"),
    ],
)
def test_a_flat_val_csv_of_another_shape_is_one_line(images, tmp_path, capsys, content, message):
    root = write_folder(tmp_path / "src", images, val="kaggle")
    (root / "LOC_val_solution.csv").write_text(content)
    assert run(root, tmp_path / "out") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {root / 'LOC_val_solution.csv'}: {message}; use Kaggle's LOC_val_solution.csv as it comes "
        "(header ImageId,PredictionString)"
    )


def test_two_parquet_rows_of_one_imagenet_id_with_other_bytes_are_refused(images, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "src"
    (root / "data").mkdir(parents=True)
    one, other = images["val"][0].data, images["val"][1].data
    rows = [
        {"bytes": one, "path": "ILSVRC2012_val_00000001.JPEG"},
        {"bytes": other, "path": "ILSVRC2012_val_00000001 copy.JPEG"},
    ]
    pq.write_table(pa.table({"image": rows, "label": [160, 160]}), root / "data" / "validation-00000-of-00001.parquet")
    assert run(root, tmp_path / "out") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {root / 'data' / 'validation-00000-of-00001.parquet'}: 'ILSVRC2012_val_00000001 copy.JPEG' is "
        "ImageNet image ILSVRC2012_val_00000001, which another row of the source holds with other bytes; keep one "
        "row per image and re-run"
    )


@pytest.mark.parametrize(
    "url, part",
    [("hf://datasets/me/x?y=1", "x?y=1"), ("hf://datasets/-me/x", "-me"), ("hf://datasets/me/x..y", "x..y")],
)
def test_an_hf_source_the_hub_cannot_name_is_one_line(tmp_path, capsys, url, part):
    assert run(url, tmp_path / "out") == 2  # was: HfFileSystem's HfUriError traceback
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {url}: {part!r} is not a Hub repo name")
