"""Encoding samples into tar members and decoding them back.

A sample is three members sharing its key, in this order: the image (`png` or `jpg`), `cls` (ASCII
integer) and `json` (sorted keys, no spaces). Encoding is deterministic: the same sample, the same bytes.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from PIL import Image

from shards.errors import ShardsError

IMAGE_EXTS = ("png", "jpg")
JPEG_QUALITY = 95


def encode_image(image: np.ndarray | bytes, ext: str) -> bytes:
    """uint8 HxWxC (C = 1 or 3) -> PNG/JPEG bytes; bytes pass through unchanged (already encoded)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        _check_encoded(bytes(image))
        return bytes(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ShardsError(f"image of dtype {array.dtype} and shape {array.shape}: must be uint8 HxWxC with C = 1 or 3")
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    if ext == "png":
        pil.save(buffer, format="PNG")
    else:
        pil.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# What PIL raises for damaged or hostile image bytes (zlib.error, struct.error and SyntaxError come from
# its PNG/JPEG plugins); decode_image turns them into ValueError, the one type readers treat as bad data.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


# Modes PIL opens images of more than 8 bits per channel in. PIL itself reduces 16-bit RGB(A) and grey+alpha
# PNGs to their high byte; 16-bit greyscale (I;16*), 32-bit integer (I) and float (F) images stay wide, and
# its convert("L") clips them (a 16-bit ramp becomes 98% white, a [0, 1] float image black).
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_8bit(pil: Image.Image) -> Image.Image:
    """A wide greyscale image scaled to 8-bit "L"; images of any other mode are returned unchanged.

    16-bit values keep their high byte (v >> 8: what PIL does to 16-bit RGB PNGs and libpng's
    png_set_strip_16); floats are taken as [0, 1] (the float image convention of scikit-image and
    torchvision's ToTensor) and rounded; raises ValueError for 32-bit integers (no known range) and for
    floats outside [0, 1] or NaN, rather than guess.
    """
    if pil.mode not in WIDE_MODES:
        return pil
    if pil.mode == "I":
        raise ValueError("a 32-bit integer image: its value range is unknown; convert it to 8 or 16 bits")
    array = np.asarray(pil)
    if pil.mode == "F":
        if not np.isfinite(array).all():
            raise ValueError("a float image with NaN or infinite values; convert it to 8-bit")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"a float image with values in [{array.min():g}, {array.max():g}], not [0, 1]; "
                "convert it to 8-bit, or scale it to [0, 1]"
            )
        return Image.fromarray(np.rint(array * 255).astype(np.uint8), "L")
    return Image.fromarray((array.astype(np.uint16) >> 8).astype(np.uint8), "L")


def _check_encoded(data: bytes) -> None:
    """Refuse encoded bytes that are no image or hold more than 8 bits per channel (read from the header)."""
    try:
        mode = Image.open(io.BytesIO(data)).mode
    except DECODE_ERRORS as exc:
        raise ShardsError(f"encoded image bytes that are no image ({type(exc).__name__}: {exc})") from exc
    if mode in WIDE_MODES:
        raise ShardsError(
            f"encoded image of mode {mode} (more than 8 bits per channel): the format stores 8-bit "
            "images; decode it and pass a uint8 array (shards.codec.to_8bit scales it)"
        )


def decode_image(data: bytes, channels: int | None = None, shape: list[int] | None = None) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 HxWxC; C follows the file (L -> 1, else RGB) unless `channels` is given.

    Raises ValueError for bytes that are no image, for an image over PIL's decompression-bomb limit
    (`Image.MAX_IMAGE_PIXELS`), and, when `shape` (H, W[, C]) is given, for another size: both are
    checked from the header, before a single pixel is decompressed.
    """
    try:
        pil = Image.open(io.BytesIO(data))
    except DECODE_ERRORS as exc:
        raise ValueError(f"undecodable image ({type(exc).__name__}: {exc})") from exc
    width, height = pil.size
    if pil.mode in WIDE_MODES:  # the format stores 8-bit images: never clip a wider one on the way in
        raise ValueError(f"a {pil.mode} image (more than 8 bits per channel); the format stores 8-bit images")
    if shape is not None and (height, width) != tuple(shape[:2]):
        raise ValueError(f"image is {height}x{width}, expected {shape[0]}x{shape[1]}")
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image of {width}x{height} pixels: over the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,}"
        )
    mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if pil.mode in ("L", "1") else "RGB")
    try:
        array = np.asarray(pil.convert(mode) if pil.mode != mode else pil)
    except DECODE_ERRORS as exc:
        raise ValueError(f"undecodable image ({type(exc).__name__}: {exc})") from exc
    return array[:, :, None] if array.ndim == 2 else array


def encode_json(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def json_schema(meta: dict[str, Any]) -> dict[str, str]:
    """The JSON type of every field: the same in every sample of a dataset (HF infers from 5 samples)."""

    def kind(value: Any) -> str:
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, float):
            return "float"
        if isinstance(value, str):
            return "str"
        if isinstance(value, list):
            inner = {kind(v) for v in value} or {"float"}
            if inner == {"int", "float"}:
                inner = {"float"}
            if len(inner) != 1:
                raise ShardsError(f"json list {value!r}: mixed element types; use one type per list")
            return f"list[{inner.pop()}]"
        if value is None:
            return "null"
        raise ShardsError(f"json value {value!r} of type {type(value).__name__}: use int, float, str, bool or lists")

    return {name: kind(value) for name, value in sorted(meta.items())}


def group_samples(members: Iterable[tuple[str, bytes]], source: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(name, bytes) members -> (key, {ext: bytes}) samples; members of a key must be consecutive."""
    key, fields = None, dict[str, bytes]()
    for name, data in members:
        base = name.rsplit("/", 1)[-1]
        member_key, dot, ext = base.partition(".")
        if not dot:
            continue
        if member_key != key:
            if key is not None:
                yield key, fields
            key, fields = member_key, {}
        if ext in fields:
            raise ValueError(f"{source}: duplicate member {name!r}")
        fields[ext] = data
    if key is not None:
        yield key, fields
