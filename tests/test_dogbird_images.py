"""dogbird.images: any ImageNet file -> upright RGB -> resized JPEG / fixed crop; broken files raise."""

import io

import numpy as np
import pytest
from dogbird_fixtures import EXIF_ID, TRUNCATED, _encode, _image_bytes, _pixels
from PIL import Image

from dogbird.images import check_image, open_rgb, to_fixed, to_jpeg


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    "mode, fmt", [("CMYK", "JPEG"), ("L", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("LA", "PNG")]
)
def test_every_mode_becomes_rgb_jpeg(mode, fmt):
    data = _encode(_pixels(3, 30, 20).convert(mode), fmt)
    out = decode(to_jpeg(data, size=10, quality=95, crop=0))
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (15, 10))


def test_transparent_pixels_become_white():
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    assert (np.asarray(open_rgb(_encode(Image.fromarray(rgba), "PNG"))) == 255).all()


def test_exif_orientation_is_applied():
    data = _image_bytes(EXIF_ID, 0)
    assert decode(data).size == (40, 20)  # as stored
    assert decode(to_jpeg(data, size=10, quality=95, crop=0)).size == (10, 20)  # upright, shorter side 10


def test_size_zero_keeps_the_pixels_and_crop_is_central():
    image = _pixels(1, 30, 20)
    assert decode(to_jpeg(_encode(image, "PNG"), size=0, quality=95, crop=0)).size == (30, 20)
    crop = to_fixed(_encode(image, "PNG"), res=20)
    assert crop.shape == (20, 20, 3) and np.array_equal(crop, np.asarray(image)[:, 5:25])


def test_same_input_gives_same_bytes():
    data = _image_bytes("n02088094_0", 0)  # CMYK
    assert to_jpeg(data, 16, 90, 0) == to_jpeg(data, 16, 90, 0)


@pytest.mark.parametrize("data", [_image_bytes(TRUNCATED["train"], 0), b"not an image", b""])
def test_broken_files_raise(data):
    with pytest.raises((OSError, ValueError)):
        check_image(data)


def test_a_16bit_greyscale_png_is_scaled_not_clipped():
    ramp = (np.arange(256, dtype=np.uint32).reshape(16, 16) * 257 + 100).astype(np.uint16)
    crop = to_fixed(_encode(Image.fromarray(ramp), "PNG"), res=16)  # I;16, which convert("RGB") clips
    assert np.array_equal(crop, np.repeat((ramp >> 8).astype(np.uint8)[:, :, None], 3, axis=2))


def test_a_float_image_outside_0_1_is_refused_by_the_scan():
    data = _encode(Image.fromarray(np.full((8, 8), 200.0, np.float32)), "TIFF")
    with pytest.raises(ValueError, match=r"a float image with values in \[200, 200\], not \[0, 1\]"):
        check_image(data)


@pytest.mark.parametrize("width, height", [(1, 3000), (8000, 1)])
def test_an_image_too_long_for_a_jpeg_once_resized_is_refused_from_its_header(width, height):
    data = _encode(Image.new("RGB", (width, height), (90, 30, 200)), "JPEG", quality=90)
    with pytest.raises(
        ValueError,
        match=f"a {width}x{height} image: resizing its shorter side to 256 px makes the "
        f"longer one {256 * max(width, height):,} px, over JPEG's limit of 65,500",
    ):
        check_image(data, size=256)
    check_image(data, size=0)  # kept at its own size, it fits


def test_a_long_image_that_fits_once_resized_is_kept():
    data = _encode(Image.new("RGB", (1, 3000), (90, 30, 200)), "JPEG", quality=90)
    check_image(data, size=16)
    assert decode(to_jpeg(data, size=16, quality=90, crop=0)).size == (16, 48000)
