"""Quality report of a generated dataset: `python -m cifar5m report DIR --reference DATASET`.

    python -m cifar5m report out/cifar5m --reference out/cifar10            # FID/KID vs CIFAR-10 train
    python -m cifar5m report out/cifar5m --reference out/cifar10 --samples 50000 --inception-weights FILE

Writes `DIR/extras/report.md`, `report.json` and PNGs: class balance (manifest), the labeler's confidence
per class (`json.max_prob` of the samples read), a sample grid, the nearest real images (pixel L2) of a
few samples, and FID and KID against the reference split.

FID/KID use torch-fidelity: its `inception-v3-compat` extractor reproduces the TensorFlow Inception of the
original FID code, which the DDPM paper's CIFAR-10 FID 3.17 was measured with (clean-fid also offers that
mode but has had no release since 2022; torchmetrics wraps torch-fidelity's extractor), and its FID and
KID functions are used on the features as they are. Install it with `pip install 'deep-bootstrap-data[report]'`.
FID depends on the sample count (biased upwards for few samples): compare FIDs only at equal `--samples`;
the paper-comparable figure uses 50,000.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar5m.errors import Cifar5mError
from cifar5m.extras import collect_grid, plot_classes, plot_grid
from shards import Manifest, iter_samples, load_manifest, resolve_dataset
from shards.cliargs import add_device
from shards.jsonio import write_text_atomic
from shards.runtime import resolve_device

log = logging.getLogger(__name__)

FeatureExtractor = Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W, C) -> float features (N, D)
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's converted TF Inception
KID_SUBSET = 1000  # torch-fidelity's default subset size (100 subsets)
NEIGHBOUR_QUERIES, NEIGHBOURS = 8, 5


@dataclass(frozen=True)
class SplitSample:
    """The first `n` images of a split with their labels and, for generated data, the labeler's confidence."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int (N,)
    max_prob: np.ndarray | None  # float (N,), None when the samples do not record it


def read_split(dataset: str, split: str | None, limit: int) -> tuple[SplitSample, Manifest, str]:
    """Up to `limit` samples of `split` (default: train, else the first split), in index order."""
    root = resolve_dataset(dataset)
    manifest = load_manifest(root)
    split = split or ("train" if "train" in manifest.splits else next(iter(manifest.splits)))
    if split not in manifest.splits:
        raise Cifar5mError(f"{dataset}: no split {split!r} (has {', '.join(manifest.splits)})")
    images: list[np.ndarray] = []
    labels, probs = [], []
    for _, image, cls, meta in iter_samples(root / f for f in manifest.splits[split].shard_files()):
        if len(images) == limit:
            break
        images.append(image if image.shape[2] == 3 else np.repeat(image, 3, axis=2))
        labels.append(cls)
        probs.append(meta.get("max_prob"))
    if not images:
        raise Cifar5mError(f"{dataset}: split {split} is empty")
    recorded = all(p is not None for p in probs)
    sample = SplitSample(np.stack(images), np.asarray(labels), np.asarray(probs, float) if recorded else None)
    return sample, manifest, split


def inception_extractor(weights: str | None, device: str = "cpu", batch_size: int = 200) -> FeatureExtractor:
    """torch-fidelity's TF-compatible InceptionV3 pool features (2048-d), weights from a local file if given."""
    import torch  # heavy: only FID/KID needs it

    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3
    except ImportError:
        raise Cifar5mError(
            "FID/KID need torch-fidelity: pip install 'deep-bootstrap-data[report]' (or pass --no-fid)"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    path = Path(weights) if weights else cached
    if not path.is_file():
        raise Cifar5mError(
            f"Inception weights not found at {path}: download {URL_INCEPTION_V3} there (the "
            f"torch hub cache), or anywhere and pass --inception-weights FILE; or use --no-fid"
        )
    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    except Exception as exc:  # a damaged or wrong file: torch raises several types
        raise Cifar5mError(
            f"{path}: not torch-fidelity's Inception weights ({type(exc).__name__}: {exc}); "
            f"download {URL_INCEPTION_V3} again"
        ) from exc
    model = model.to(device)

    def extract(images: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for first in range(0, len(images), batch_size):
                batch = torch.from_numpy(images[first : first + batch_size]).permute(0, 3, 1, 2).contiguous()
                out.append(model(batch.to(device))[0].double().cpu().numpy())
        return np.concatenate(out)

    return extract


def frechet_distance(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """FID between two feature sets: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) (Heusel et al. 2017)."""
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(torch.from_numpy(np.asarray(f, np.float64))) for f in (features_1, features_2)]
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


def kernel_distance(features_1: np.ndarray, features_2: np.ndarray, subset: int = KID_SUBSET) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std of the cubic-kernel MMD^2 over 100 random subsets."""
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(subset, len(features_1), len(features_2))
    out = kid_features_to_metric(
        torch.from_numpy(np.asarray(features_1, np.float64)),
        torch.from_numpy(np.asarray(features_2, np.float64)),
        kid_subset_size=size,
        verbose=False,
    )
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Indices (Q, k) of each query's k nearest reference images in pixel L2: memorisation shows up here."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    best = []
    for first in range(0, len(reference), 8192):
        r = reference[first : first + 8192].reshape(-1, q.shape[1]).astype(np.float64)
        dist = (q**2).sum(1)[:, None] + (r**2).sum(1)[None] - 2 * q @ r.T
        best.append((dist, np.arange(first, first + len(r))))
    dist = np.concatenate([d for d, _ in best], axis=1)
    index = np.concatenate([i for _, i in best])
    return index[np.argsort(dist, axis=1, kind="stable")[:, :k]]


def confidence_per_class(sample: SplitSample, num_classes: int) -> list[float | None]:
    if sample.max_prob is None:
        return [None] * num_classes
    return [
        float(sample.max_prob[sample.labels == c].mean()) if (sample.labels == c).any() else None
        for c in range(num_classes)
    ]


def plot_confidence(values: list[float | None], class_names: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(class_names) * 0.7), 3.5))
    ax.bar(range(len(class_names)), [v or 0.0 for v in values])
    ax.set_xticks(range(len(class_names)), class_names, rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean max probability")
    ax.set_title("labeler confidence per class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_neighbours(queries: np.ndarray, reference: np.ndarray, index: np.ndarray, path: Path) -> None:
    """One row per query: the generated image, then its nearest real images."""
    import matplotlib.pyplot as plt

    rows, cols = len(queries), index.shape[1] + 1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), squeeze=False)
    for r in range(rows):
        for c, image in enumerate([queries[r], *reference[index[r]]]):
            axes[r][c].imshow(image, interpolation="nearest")
            axes[r][c].axis("off")
    axes[0][0].set_title("sample", fontsize=8)
    axes[0][1].set_title("nearest real (pixel L2) ->", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def quality_numbers(generated: SplitSample, reference: SplitSample, extractor: FeatureExtractor | None) -> dict:
    if extractor is None:
        return {"fid": None, "kid_mean": None, "kid_std": None}
    gen, ref = extractor(generated.images), extractor(reference.images)
    kid_mean, kid_std = kernel_distance(gen, ref)
    return {"fid": frechet_distance(gen, ref), "kid_mean": kid_mean, "kid_std": kid_std}


def render_markdown(numbers: dict) -> str:
    fid = "not measured (--no-fid)" if numbers["fid"] is None else f"{numbers['fid']:.2f}"
    kid = "not measured" if numbers["kid_mean"] is None else f"{numbers['kid_mean']:.5f} ± {numbers['kid_std']:.5f}"
    rows = "\n".join(
        f"| {name} | {count:,} | {count / max(numbers['total'], 1):.1%} | {'-' if conf is None else f'{conf:.3f}'} |"
        for name, count, conf in zip(numbers["class_names"], numbers["class_counts"], numbers["confidence_per_class"])
    )
    return f"""# Quality report: {numbers["dataset"]}

Generated: split `{numbers["split"]}`, first {numbers["samples"]:,} images. Reference: `{numbers["reference"]}`
split `{numbers["reference_split"]}`, first {numbers["reference_samples"]:,} images.

| metric | value |
|---|---|
| FID (torch-fidelity, TF-compatible Inception, {numbers["samples"]:,} vs {numbers["reference_samples"]:,}) | {fid} |
| KID (subsets of {min(KID_SUBSET, numbers["samples"], numbers["reference_samples"])}) | {kid} |

FID grows as the sample count shrinks: compare only at equal counts (the DDPM paper: 3.17 at 50,000 vs
CIFAR-10 train, EMA weights, 1000 steps).

## Classes (all splits, from the manifest) and labeler confidence (samples read)

| class | images | share | mean max prob |
|---|---:|---:|---:|
{rows}

![class balance](class_balance.png) ![confidence](confidence_per_class.png)

## Samples and their nearest real images

![samples](sample_grid.png)

![neighbours](nearest_neighbours.png)
"""


def write_report(
    dataset: str,
    reference: str,
    samples: int = 10_000,
    split: str | None = None,
    reference_split: str | None = None,
    extractor: FeatureExtractor | None = None,
) -> Path:
    """Write report.md, report.json and the PNGs into `<dataset>/extras/`; return report.md's path."""
    import matplotlib

    matplotlib.use("Agg")
    root = resolve_dataset(dataset)  # a URL is downloaded; the report goes beside the local copy
    generated, manifest, split = read_split(str(root), split, samples)
    real, _, reference_split = read_split(reference, reference_split or "train", samples)
    if generated.images.shape[1:] != real.images.shape[1:]:
        raise Cifar5mError(
            f"{dataset} images are {generated.images.shape[1:]}, {reference}'s are "
            f"{real.images.shape[1:]}: compare datasets of the same image size"
        )
    counts = np.sum([s.label_histogram for s in manifest.splits.values()], axis=0).tolist()
    numbers = {
        "dataset": str(dataset),
        "split": split,
        "samples": len(generated.images),
        "reference": str(reference),
        "reference_split": reference_split,
        "reference_samples": len(real.images),
        "class_names": manifest.class_names,
        "class_counts": counts,
        "total": int(sum(counts)),
        "confidence_per_class": confidence_per_class(generated, len(manifest.class_names)),
        **quality_numbers(generated, real, extractor),
    }
    out = root / "extras"
    out.mkdir(exist_ok=True)
    queries = generated.images[:NEIGHBOUR_QUERIES]
    plot_neighbours(queries, real.images, nearest_neighbours(queries, real.images), out / "nearest_neighbours.png")
    plot_grid(collect_grid(root, manifest), manifest.class_names, out / "sample_grid.png")
    plot_classes(
        {
            "class_names": manifest.class_names,
            "splits": {s: {"count": i.count, "label_histogram": i.label_histogram} for s, i in manifest.splits.items()},
        },
        out / "class_balance.png",
    )
    plot_confidence(numbers["confidence_per_class"], manifest.class_names, out / "confidence_per_class.png")
    write_text_atomic(out / "report.json", json.dumps(numbers, indent=1) + "\n")
    write_text_atomic(out / "report.md", render_markdown(numbers))
    return out / "report.md"


def _cmd_report(args) -> int:
    if args.samples < 2:
        raise Cifar5mError(f"--samples={args.samples}: must be >= 2 (FID needs a covariance)")
    extractor = (
        None
        if args.no_fid
        else inception_extractor(args.inception_weights, str(resolve_device(args.device, Cifar5mError)))
    )
    path = write_report(args.dir, args.reference, args.samples, args.split, args.reference_split, extractor)
    numbers = json.loads((path.parent / "report.json").read_text())
    fid = "not measured" if numbers["fid"] is None else f"{numbers['fid']:.2f}"
    print(f"wrote {path} (FID {fid} at {numbers['samples']:,} samples)")
    return 0


def register(sub) -> None:
    """Add `report` to the `python -m cifar5m` subcommands."""
    p = sub.add_parser(
        "report",
        help="quality report: class balance, confidence, samples, neighbours, FID, KID",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", help="generated dataset folder (the report goes to DIR/extras/)")
    p.add_argument("--reference", required=True, help="real dataset of ours to compare with, e.g. out/cifar10")
    p.add_argument("--split", help="generated split (default train)")
    p.add_argument("--reference-split", help="reference split (default train: FIDs vs CIFAR-10 train are standard)")
    p.add_argument(
        "--samples", type=int, default=10_000, help="images per side (default %(default)s; papers use 50,000)"
    )
    p.add_argument(
        "--inception-weights",
        metavar="FILE",
        help=f"torch-fidelity's {INCEPTION_FILE} (default: the torch hub cache, where torch-fidelity downloads it)",
    )
    p.add_argument("--no-fid", action="store_true", help="skip FID/KID (no Inception weights needed)")
    add_device(p)
    p.set_defaults(func=_cmd_report)
