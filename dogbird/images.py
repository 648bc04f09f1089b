"""One ImageNet file -> RGB -> resized -> JPEG (or a fixed-size uint8 crop): the per-image work.

Any input PIL reads becomes RGB: CMYK JPEGs (22 train files and one val file of ILSVRC2012, listed in
TFDS's imagenet.py), greyscale, palette, RGBA and the PNG named `.JPEG` (train `n02105855_2933.JPEG`);
EXIF orientation is applied. Resizing uses PIL's antialiased bilinear filter, as torchvision's
`Resize(256)` does on PIL images (the paper's code trained on ImageNet copies resized to 256).
Same bytes in -> same bytes out (PIL/libjpeg are deterministic for one version).
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageOps

from shards.codec import to_8bit

log = logging.getLogger(__name__)

# A truncated file is an error, never a half-grey image (PIL's default; stated because it matters here).
Image.LOAD_TRUNCATED_IMAGES = False
BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white


# libjpeg's JPEG_MAX_DIMENSION: no side of a JPEG may be longer. It also bounds the memory of one resized
# image (a 1x8000 JPEG of a few hundred bytes resized to shorter side 256 would take 1.5 GB, then fail).
JPEG_MAX_SIDE = 65_500


def check_image(data: bytes, size: int = 0) -> None:
    """Raise ValueError (or PIL's error) when `data` cannot become a dataset image at shorter side `size`.

    Cheap: the resized size is checked from the header, and JPEGs decode at 1/8 scale (libjpeg DCT scaling).
    """
    with Image.open(io.BytesIO(data)) as image:
        longer = resized_longer_side(image.size, size)
        if longer > JPEG_MAX_SIDE:
            w, h = image.size
            raise ValueError(
                f"a {w}x{h} image: resizing its shorter side to {size} px makes the longer one "
                f"{longer:,} px, over JPEG's limit of {JPEG_MAX_SIDE:,}"
            )
        if image.format == "JPEG":
            image.draft("RGB", (image.width // 8 or 1, image.height // 8 or 1))
        image.load()
        to_8bit(image)  # a float image outside [0, 1] or a 32-bit one raises here, not while writing


def resized_longer_side(wh: tuple[int, int], size: int) -> int:
    """The longer side after resize_shorter(size) (size 0 keeps it)."""
    short, long = sorted(wh)
    return max(1, round(long * (size / short))) if size else long


def open_rgb(data: bytes) -> Image.Image:
    """Decode any image file to an RGB PIL image, upright (EXIF orientation applied)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an already upright image
    except Exception as exc:  # ImageNet has EXIF blocks PIL cannot parse: keep the pixels as stored
        log.debug("unreadable EXIF (%s): orientation left as stored", exc)
    if image.mode == "RGB":
        return image  # convert() would copy it
    image = to_8bit(image)  # 16-bit greyscale scaled (convert() clips it); unusable floats raise ValueError
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(flat, rgba).convert("RGB")
    return image.convert("RGB")


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size` (aspect kept); size 0 keeps the image as it is."""
    if size == 0:
        return image
    w, h = image.size
    longer = resized_longer_side((w, h), size)
    new = (size, longer) if w <= h else (longer, size)
    return image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central size x size square (size 0: no crop); an image smaller than that is an error."""
    if size == 0:
        return image
    w, h = image.size
    if w < size or h < size:
        raise ValueError(f"{w}x{h} image is smaller than the {size}px centre crop")
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def to_jpeg(data: bytes, size: int, quality: int, crop: int) -> bytes:
    """The dataset image: decode -> RGB -> shorter side `size` -> centre crop `crop` -> JPEG `quality`."""
    return encode_jpeg(center_crop(resize_shorter(open_rgb(data), size), crop), quality)


def to_fixed(data: bytes, res: int) -> np.ndarray:
    """A res x res x 3 uint8 centre crop (shorter side resized to res) for the pre-decoded copy."""
    return np.asarray(center_crop(resize_shorter(open_rgb(data), res), res))
