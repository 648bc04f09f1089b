"""The decode data path (`--data-path decode`, the default for datasets of variable-size images such as
DogBird): encoded images held in memory, decoded and cropped to the model's input per batch.

    rows = read_encoded(ds, "train", sampler.subset)        # bytes of the held rows, checked per shard
    source = JpegSource(rows, sampler, cfg, dist, device)   # GPU: nvJPEG batches; CPU: DataLoader workers
    x_u8, y, idx = source.batch(step)                       # uint8 (b, size, size, C), already cropped

Each sample's view is a crop box in the stored image, resized to the model's size: for training a
RandomResizedCrop box (torchvision's algorithm: area 8-100%, aspect 3/4-4/3, 10 tries, else the central
box) and a coin-flip mirror (`rrc-flip`), or the central box of side 0.875 x the shorter side ("resize
256, centre crop 224", `none`/`flip`), which is also the evaluation view. Boxes and flips come from one
generator per (seed, step, rank), drawn in sample order, so a batch is the same with any number of
workers, after a resume, and on the GPU path (which only resamples differently: bilinear, antialiased).

Where a GPU is used, `torchvision.io.decode_jpeg` decodes the whole batch on it (a list of encoded
tensors in, a list of images out) and the crops are resized there; the host only slices bytes. On the
CPU, DataLoader worker processes decode with PIL, using JPEG DCT scaling (`Image.draft`) when the crop
is at least twice the output size.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from shards.checked import read_checked_shard
from shards.codec import DECODE_ERRORS
from train.core import ddp
from train.core.augment import EvalView
from train.core.samplers import derive_seed
from train.data.datasets import Dataset
from train.errors import TrainError

log = logging.getLogger(__name__)

# Evaluation / no-augmentation view: the central square of 0.875 x the shorter side ("resize 256, crop 224").
CROP_PCT = 0.875
# torchvision.transforms.RandomResizedCrop defaults.
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)


@dataclass
class EncodedRows:
    """Encoded images of the sorted global `rows` of a split, in one byte buffer, with their labels."""

    data: np.ndarray  # uint8, the encoded images one after another
    offsets: np.ndarray  # int64 (N + 1,): image i is data[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int64 (N,)
    rows: np.ndarray  # int64 (N,), sorted global indices

    def local(self, indices: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, indices)

    def encoded(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]


def read_encoded(ds: Dataset, split: str, rows: np.ndarray | None) -> EncodedRows:
    """The encoded images of `rows` (sorted global indices; None = all) of a local split, reading only
    the shards that hold some, each checked against its manifest entry (sha256, keys, sample count)."""
    info = ds.split(split)
    rows = np.arange(info.count, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    touched = sorted(
        (
            e
            for e in info.shards
            if np.searchsorted(rows, e.first_index + e.samples) > np.searchsorted(rows, e.first_index)
        ),
        key=lambda e: e.first_index,
    )
    data = np.empty(sum(e.bytes for e in touched), dtype=np.uint8)  # a shard's size bounds its images' bytes
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    labels = np.full(len(rows), -1, dtype=np.int64)
    filled = 0
    # Shards in index order and keys ascending within each: rows are filled in order, so the buffer is too.
    for entry in touched:
        for key, image, cls, _ in read_checked_shard(Path(ds.root) / entry.file, entry, decode=False):
            index = int(key)
            pos = np.searchsorted(rows, index)
            if pos < len(rows) and rows[pos] == index and pos == filled:
                start = offsets[pos]
                data[start : start + len(image)] = np.frombuffer(image, dtype=np.uint8)
                offsets[pos + 1], labels[pos] = start + len(image), cls
                filled += 1
    if filled < len(rows):
        raise TrainError(
            f"{ds.location}/{split}: sample {rows[filled]} is missing or out of order in its shard; "
            "run `python -m shards verify` on the dataset and rebuild it"
        )
    return EncodedRows(data[: offsets[-1]], offsets, labels, rows)


def view_box(rng: np.random.Generator, width: int, height: int, random_crop: bool) -> tuple[float, float, float, float]:
    """(left, top, crop width, crop height) of one sample's view in a width x height image."""
    if random_crop:
        # torchvision RandomResizedCrop.get_params: 10 tries of (area fraction, log-uniform aspect).
        area = width * height
        for _ in range(10):
            target = area * rng.uniform(*RRC_SCALE)
            ratio = math.exp(rng.uniform(math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])))
            w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                return float(rng.integers(0, width - w + 1)), float(rng.integers(0, height - h + 1)), float(w), float(h)
    side = CROP_PCT * min(width, height)
    return (width - side) / 2, (height - side) / 2, side, side


def plan_views(rng: np.random.Generator, shapes: list[tuple[int, int]], aug: str) -> list[tuple[tuple, bool]]:
    """(box, mirrored) per (width, height), drawn in order: the same stream for every decoder."""
    views = []
    for width, height in shapes:
        box = view_box(rng, width, height, aug == "rrc-flip")
        mirrored = aug in ("flip", "rrc-flip") and bool(rng.random() < 0.5)
        views.append((box, mirrored))
    return views


def decode_view_pil(encoded: bytes, rng: np.random.Generator | None, size: int, aug: str, mode: str) -> np.ndarray:
    """One image decoded with PIL and its view resized to size x size: uint8 (size, size, C).

    `rng` draws the box and mirror; the `none` view draws nothing, so it may be None there."""
    image = Image.open(io.BytesIO(encoded))
    width, height = image.size
    (left, top, w, h), mirrored = plan_views(rng, [(width, height)], aug)[0]
    # JPEG DCT scaling: decode at 1/2, 1/4 or 1/8 scale while the crop stays >= size pixels (Pillow draft).
    image.draft(mode, (max(1, math.ceil(width * size / w)), max(1, math.ceil(height * size / h))))
    sx, sy = image.size[0] / width, image.size[1] / height
    image = image.convert(mode)
    out = image.resize((size, size), Image.BILINEAR, box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy))
    if mirrored:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    array = np.asarray(out)
    return array[:, :, None] if array.ndim == 2 else array


def decode_row(
    rows: EncodedRows, i: int, rng: np.random.Generator | None, size: int, aug: str, mode: str
) -> np.ndarray:
    """decode_view_pil of held image `i`; bytes that match their shard's sha256 but are no image (the
    shard was made so) are one clear error naming the sample, not a PIL traceback from a worker."""
    try:
        return decode_view_pil(rows.encoded(i).tobytes(), rng, size, aug, mode)
    except DECODE_ERRORS as exc:
        raise TrainError(
            f"sample {rows.rows[i]:09d}: undecodable image ({type(exc).__name__}: {exc}); its shard "
            "matches the manifest, so the dataset was built so: rebuild it from its source"
        ) from exc


def decode_views_torch(
    encoded: list[torch.Tensor], rng: np.random.Generator, size: int, aug: str, channels: int, device: torch.device
) -> torch.Tensor:
    """A batch decoded by torchvision on `device` (nvJPEG on CUDA), views resized there: uint8 NHWC."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg  # deferred: only this path needs them

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        images = decode_jpeg(encoded, mode=mode, device=device)
    except RuntimeError as exc:  # a PNG or CMYK file the GPU decoder refuses: decode this batch on the CPU
        log.debug("GPU JPEG decode refused a batch (%s); decoding it on the CPU", exc)
        try:
            images = [decode_image(e, mode=mode).to(device) for e in encoded]
        except RuntimeError as bad:  # torchvision's error for bytes that are no image
            raise TrainError(
                f"a batch holds an undecodable image ({bad}); its shard matches the manifest, so "
                "the dataset was built so: rebuild it from its source"
            ) from bad
    views = plan_views(rng, [(im.shape[2], im.shape[1]) for im in images], aug)
    out = torch.empty((len(images), size, size, channels), dtype=torch.uint8, device=device)
    for i, (image, ((left, top, w, h), mirrored)) in enumerate(zip(images, views)):
        # The integer pixel bounds enclosing the box (under a pixel larger per side than PIL's exact
        # float box), resized bilinearly with antialiasing.
        crop = image[:, int(top) : math.ceil(top + h), int(left) : math.ceil(left + w)][None].float()
        view = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        view = view.round_().clamp_(0, 255).to(torch.uint8)[0]
        out[i] = (view.flip(2) if mirrored else view).permute(1, 2, 0)
    return out


class DecodedBatches(torch.utils.data.Dataset):
    """Item `step` = this rank's batch of that step, decoded with PIL (for DataLoader workers)."""

    def __init__(
        self,
        rows: EncodedRows,
        sampler,
        batch_size: int,
        dist: ddp.Dist,
        size: int,
        aug: str,
        seed: int,
        channels: int,
        steps: int,
    ):
        self.rows, self.sampler, self.batch_size, self.size, self.aug = rows, sampler, batch_size, size, aug
        self.steps = steps
        self.rank, self.per_rank, self.seed = dist.rank, batch_size // dist.world, seed
        self.mode = "RGB" if channels == 3 else "L"

    def __len__(self) -> int:
        return self.steps  # item i is step i

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start = self.rank * self.per_rank
        idx = self.sampler.indices(step, self.batch_size)[start : start + self.per_rank]
        local = self.rows.local(idx)
        rng = np.random.default_rng(derive_seed(self.seed, "decode-view", step, self.rank))
        images = np.stack([decode_row(self.rows, i, rng, self.size, self.aug, self.mode) for i in local])
        return torch.from_numpy(images), torch.from_numpy(self.rows.labels[local]), torch.from_numpy(idx)


class JpegSource:
    """Batches decoded per step from held encoded images; the train-eval set decoded once (centre view)."""

    def __init__(self, rows: EncodedRows, sampler, cfg, dist: ddp.Dist, device: torch.device, channels: int):
        self.rows, self.sampler, self.dist, self.device, self.channels = rows, sampler, dist, device, channels
        self.batch_size, self.steps, self.num_workers = cfg.batch_size, cfg.steps, cfg.num_workers
        self.batches = DecodedBatches(
            rows, sampler, cfg.batch_size, dist, cfg.image_size, cfg.aug, cfg.seed, channels, cfg.steps
        )
        self.step, self._loader = 0, None
        first = sampler.first_samples(cfg.eval_train_samples)
        self.eval_rows = len(first)
        local = rows.local(first[dist.rank :: dist.world])
        images = [decode_row(rows, i, None, cfg.image_size, "none", self.batches.mode) for i in local]
        empty = np.empty((0, cfg.image_size, cfg.image_size, channels), np.uint8)
        self.keep = torch.from_numpy(np.stack(images) if images else empty).to(device)
        self.keep_labels = torch.from_numpy(rows.labels[local]).to(device)

    def view(self, x_u8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The trainer's train view: the batch is already cropped, so only normalise it."""
        return EvalView(x_u8.shape[1])(x_u8)

    def _open(self, start: int):
        workers = self.num_workers if self.device.type != "cuda" else 0
        return iter(
            torch.utils.data.DataLoader(
                self.batches,
                batch_size=None,
                sampler=range(start, self.steps),
                num_workers=workers,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if workers else None,
            )
        )

    def _gpu_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self.batches
        idx = self.sampler.indices(step, self.batch_size)[b.rank * b.per_rank : (b.rank + 1) * b.per_rank]
        local = self.rows.local(idx)
        encoded = [torch.from_numpy(self.rows.encoded(i)) for i in local]
        rng = np.random.default_rng(derive_seed(b.seed, "decode-view", step, b.rank))
        images = decode_views_torch(encoded, rng, b.size, b.aug, self.channels, self.device)
        return images, torch.from_numpy(self.rows.labels[local]), torch.from_numpy(idx)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        if self.device.type == "cuda":
            images, labels, idx = self._gpu_batch(step)
        else:
            if self._loader is None or step != self.step:
                self._loader = self._open(step)
            images, labels, idx = next(self._loader)
        self.step = step + 1
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True), idx.numpy()

    def skip_to(self, step: int) -> None:
        """Batches are a function of the step: the next read starts at `step`."""
        self.step, self._loader = step, None

    def train_eval(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        seen = self.eval_rows if self.sampler.kind == "real" else min(self.eval_rows, step * self.batch_size)
        count = len(range(self.dist.rank, seen, self.dist.world))
        return self.keep[:count], self.keep_labels[:count]
