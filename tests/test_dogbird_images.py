"""dogbird.images: any ImageNet file -> upright RGB -> resized JPEG / fixed crop; broken files raise."""
import io

import numpy as np
import pytest
from dogbird_fixtures import EXIF_ID, TRUNCATED, _encode, _image_bytes, _pixels
from PIL import Image

from dogbird.images import check_image, open_rgb, to_fixed, to_jpeg


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("L", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                       ("RGB", "PNG"), ("LA", "PNG")])
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
