"""Images of more than 8 bits per channel are scaled, never clipped, or refused with one line; sample json
that breaks the manifest's schema is named by verify."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from shards_fixtures import build, rewrite_shard, shard_with

from shards import ShardsError, iter_samples, load_manifest
from shards.cli import main
from shards.codec import encode_image, encode_json, to_8bit
from shards.verify import verify_dataset

# Every 16-bit value from 0 to 65,535 in steps of 257 and 1: a ramp whose high bytes are 0..255.
RAMP16 = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257 + 128).astype(np.uint16)


def png16(array: np.ndarray = RAMP16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")  # uint16 greyscale -> a 16-bit PNG (mode I;16)
    return buffer.getvalue()


def float_tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.float32)).save(buffer, format="TIFF")  # mode F
    return buffer.getvalue()


def test_16bit_greyscale_keeps_its_high_byte_where_convert_clips_it():
    pil = Image.open(io.BytesIO(png16()))
    assert pil.mode == "I;16"
    assert (np.asarray(pil.convert("L")) == 255).mean() > 0.98  # what PIL alone does: clipped
    assert np.array_equal(np.asarray(to_8bit(pil)), (RAMP16 >> 8).astype(np.uint8))


def test_float_images_in_0_1_are_scaled_and_others_refused():
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    scaled = np.asarray(to_8bit(Image.open(io.BytesIO(float_tiff(ramp)))))
    assert np.array_equal(scaled, np.rint(ramp.astype(np.float32) * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"values in \[0, 255\], not \[0, 1\]"):
        to_8bit(Image.open(io.BytesIO(float_tiff(ramp * 255))))
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_8bit(Image.open(io.BytesIO(float_tiff(np.full((4, 4), np.nan)))))
    with pytest.raises(ValueError, match="32-bit integer image"):
        to_8bit(Image.fromarray(np.zeros((4, 4), np.int32)))


def test_import_scales_a_16bit_png_and_refuses_a_float_tiff_in_one_line(tmp_path, capsys):
    source = tmp_path / "src"
    for name in ("flat", "ramp"):  # two classes: `datasets` labels an image folder of one class not at all
        (source / "train" / name).mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(source / "train" / "flat" / "000.png")
    (source / "train" / "ramp" / "000.png").write_bytes(png16())
    assert main(["import", str(source), "--out", str(tmp_path / "ds")]) == 0
    samples = list(iter_samples(sorted((tmp_path / "ds" / "data").glob("*.tar"))))
    [image] = [image for _, image, cls, _ in samples if cls == 1]
    assert np.array_equal(image, (RAMP16 >> 8).astype(np.uint8)[:, :, None])  # a grey source stays grey

    (source / "train" / "ramp" / "000.png").unlink()
    (source / "train" / "ramp" / "000.tif").write_bytes(float_tiff(np.full((4, 4), 3.0)))
    assert main(["import", str(source), "--out", str(tmp_path / "ds2")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "Traceback" in line or "error" in line]
    assert len(err) == 1 and err[0].endswith(
        "split train row 1: a float image with values in [3, 3], not [0, 1]; convert it to 8-bit, or scale it to [0, 1]"
    )
    assert not (tmp_path / "ds2" / "manifest.json").exists()


@pytest.fixture
def ds(tmp_path):
    return build(tmp_path / "ds", train=20, test=10, per_shard=10)


def test_a_16bit_png_in_a_shard_is_flagged_by_verify_and_refused_by_the_reader(ds):
    rewrite_shard(ds, "data/train-000001.tar", shard_with(10, 10, {13: {"image": png16(RAMP16[:8, :8])}}))
    report = verify_dataset(ds)
    assert report.problems == [
        "data/train-000001.tar: sample 000000013: a I;16 image (more than 8 bits per "
        "channel); the format stores 8-bit images"
    ]
    with pytest.raises(ShardsError, match="sample 000000013: a I;16 image"):
        list(iter_samples([ds / "data/train-000001.tar"]))


def test_the_writer_refuses_encoded_16bit_bytes():
    with pytest.raises(ShardsError, match="mode I;16 .*the format stores 8-bit images"):
        encode_image(png16(), "png")


@pytest.mark.parametrize(
    "meta, problem",
    [
        (b"[1,2,3]", "json is a list, not an object of the manifest's fields ['index', 'score', 'source']"),
        (encode_json({"index": "13", "score": 0.013, "source": "s13"}), "json fields {'index': 'str', "),
        (encode_json({"index": 13}), "json fields {'index': 'int'} differ from the manifest's"),
    ],
)
def test_verify_checks_each_samples_json_against_the_manifest_schema(ds, meta, problem):
    rewrite_shard(ds, "data/train-000001.tar", shard_with(10, 10, {13: {"meta": meta}}))
    assert load_manifest(ds).json_schema == {"index": "int", "score": "float", "source": "str"}
    report = verify_dataset(ds)
    assert len(report.problems) == 1 and report.problems[0].startswith(
        f"data/train-000001.tar: sample 000000013: {problem}"
    )
