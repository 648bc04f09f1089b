"""Pictures and numbers of a generated dataset, written to `<out>/extras/` once it is complete.

- `samples_per_class.png`: a row of samples per class (like Figure 17 of the Deep Bootstrap paper),
  read from the first shards of the first split.
- `class_histogram.png`: samples per class and split (from the manifest).
- `confidence_histogram.png`: the labeler's max probability (from the per-shard histograms).
- `summary.json`: the same numbers as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cifar5m.config import CONFIDENCE_BINS
from shards import Manifest, ShardStats
from shards.jsonio import write_text_atomic
from shards.read import iter_samples

GRID_PER_CLASS = 10
GRID_MAX_SHARDS = 3  # enough for 10 of every class unless one is very rare


def dataset_numbers(manifest: Manifest, stats: list[ShardStats]) -> dict:
    """Class histograms, mean confidence and the confidence histogram, from manifest and shard stats."""
    samples = sum(s.samples for s in stats)
    hist = np.sum([s.extra["max_prob_hist"] for s in stats], axis=0) if stats else np.zeros(CONFIDENCE_BINS)
    return {
        "class_names": manifest.class_names,
        "splits": {
            name: {"count": split.count, "label_histogram": split.label_histogram}
            for name, split in manifest.splits.items()
        },
        "mean_max_prob": sum(s.extra["max_prob_sum"] for s in stats) / max(samples, 1),
        "max_prob_histogram": {
            "bins": np.linspace(0, 1, CONFIDENCE_BINS + 1).round(4).tolist(),
            "counts": np.asarray(hist, dtype=int).tolist(),
        },
    }


def collect_grid(root: Path, manifest, per_class: int = GRID_PER_CLASS) -> list[list[np.ndarray]]:
    """Up to `per_class` images of every class, in index order, from the first shards of the first split."""
    split = next(iter(manifest.splits.values()))
    rows: list[list[np.ndarray]] = [[] for _ in manifest.class_names]
    urls = [root / entry.file for entry in split.shards[:GRID_MAX_SHARDS]]
    for _, image, cls, _ in iter_samples(urls):
        if len(rows[cls]) < per_class:
            rows[cls].append(image)
            if all(len(r) == per_class for r in rows):
                break
    return rows


def plot_grid(rows: list[list[np.ndarray]], class_names: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    shape = next(img.shape for row in rows for img in row) if any(rows) else (8, 8, 1)
    height, width, channels = shape
    pad = max(1, height // 16)
    columns = max(len(r) for r in rows) or 1
    canvas = np.full((len(rows) * (height + pad), columns * (width + pad), channels), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            canvas[r * (height + pad) : r * (height + pad) + height, c * (width + pad) : c * (width + pad) + width] = (
                img
            )
    fig, ax = plt.subplots(figsize=(columns * 0.6 + 1.5, len(rows) * 0.6 + 0.5))
    ax.imshow(
        canvas[:, :, 0] if channels == 1 else canvas,
        cmap="gray" if channels == 1 else None,
        interpolation="nearest",
        vmin=0,
        vmax=255,
    )
    ax.set_yticks([r * (height + pad) + height / 2 for r in range(len(rows))], class_names)
    ax.set_xticks([])
    ax.set_title("samples per class (labeler's argmax)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_classes(numbers: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    names = numbers["class_names"]
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.7), 3.5))
    splits = numbers["splits"]
    width = 0.8 / max(len(splits), 1)
    for k, (split, info) in enumerate(splits.items()):
        fractions = np.asarray(info["label_histogram"], dtype=float) / max(info["count"], 1)
        ax.bar(np.arange(len(names)) + k * width, fractions, width, label=f"{split} ({info['count']:,})")
    ax.set_xticks(np.arange(len(names)) + width * (len(splits) - 1) / 2, names, rotation=30)
    ax.set_ylabel("fraction of split")
    ax.set_title("class histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_confidence(numbers: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    hist = numbers["max_prob_histogram"]
    edges, counts = np.asarray(hist["bins"]), np.asarray(hist["counts"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="white")
    ax.set_xlabel("labeler max probability")
    ax.set_ylabel("samples")
    ax.set_title(f"labeler confidence (mean {numbers['mean_max_prob']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_extras(root: str | Path, manifest: Manifest, stats: list[ShardStats]) -> Path:
    """Write the PNGs and summary.json into `<root>/extras/`; return that folder."""
    import matplotlib  # heavy: loaded only when this is used

    matplotlib.use("Agg")
    root = Path(root)
    out = root / "extras"
    out.mkdir(exist_ok=True)
    numbers = dataset_numbers(manifest, stats)
    write_text_atomic(out / "summary.json", json.dumps(numbers, indent=1) + "\n")
    plot_grid(collect_grid(root, manifest), manifest.class_names, out / "samples_per_class.png")
    plot_classes(numbers, out / "class_histogram.png")
    _plot_confidence(numbers, out / "confidence_histogram.png")
    return out
