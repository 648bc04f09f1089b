"""Measure the labeler on a real labelled dataset before generating (`generate --labeler-eval DATASET`).

    python -m cifar5m generate --labeler local-dir:out/labeler --labeler-eval out/cifar10 \
        --min-labeler-accuracy 0.95 --out out/cifar5m

Published CIFAR-10 classifiers self-report their accuracy and some lose points when re-measured, and the
paper's labeler was measured (BiT-M-R152x2, 98.5% on CIFAR-10 test): so the accuracy on a real test split
is measured here, recorded in the dataset's config (so in manifest.json) and its card, and
`--min-labeler-accuracy` refuses a labeler below it. A resumed run reuses the accuracy recorded in the
folder for the same labeler and evaluation set instead of measuring again, so float noise between
devices can never change the dataset's config hash mid-build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar5m.errors import Cifar5mError
from cifar5m.label import Labeler, create_labeler_model
from cifar5m.sample import TORCH_DTYPES
from shards import Manifest, iter_samples, load_manifest, resolve_dataset
from shards.identity import InputIdentity, portable_path
from shards.runtime import resolve_device
from shards.urls import is_url
from shards.writer import recorded_config

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class LabelerAccuracy:
    """The labeler's top-1 accuracy on one split of a real labelled dataset."""

    dataset: str
    split: str
    dataset_hash: str  # the evaluation set's content (Manifest.data_sha256): which data exactly
    samples: int
    accuracy: float
    per_class: tuple[float, ...]

    def record(self) -> dict:
        """What goes into the dataset config (JSON; rounded so the record reads cleanly)."""
        return {
            "accuracy": round(self.accuracy, 5),
            "dataset": self.dataset,
            "split": self.split,
            "dataset_hash": self.dataset_hash,
            "samples": self.samples,
            "per_class": [round(a, 5) for a in self.per_class],
        }


def describe(record: dict | str) -> str:
    """`97.31% on out/cifar10 test (10,000 images)`, or "not measured"."""
    if not isinstance(record, dict):
        return NOT_MEASURED
    return f"{record['accuracy']:.2%} on {record['dataset']} {record['split']} ({record['samples']:,} images)"


def eval_split(dataset: str, class_names: tuple[str, ...]) -> tuple[Path, str, Manifest]:
    """The evaluation set's folder, split ("test", else its only split) and manifest; class names must match."""
    root = resolve_dataset(dataset)
    manifest = load_manifest(root)
    if tuple(manifest.class_names) != tuple(class_names):
        raise Cifar5mError(
            f"--labeler-eval {dataset}: its classes ({', '.join(manifest.class_names)}) differ from "
            f"the dataset's ({', '.join(class_names)}); evaluate on a set with the same classes "
            "in the same order"
        )
    splits = list(manifest.splits)
    split = "test" if "test" in splits else (splits[0] if len(splits) == 1 else None)
    if split is None:
        raise Cifar5mError(
            f"--labeler-eval {dataset}: no 'test' split (has {', '.join(splits)}); give a dataset "
            "whose held-out split is called test"
        )
    return root, split, manifest


def measure_accuracy(
    labeler, dataset: str, class_names: tuple[str, ...], batch_size: int = 256, progress=None
) -> LabelerAccuracy:
    """Label every image of the evaluation split (as stored, uint8) and compare with its `cls`."""
    import torch  # heavy: the labeler runs on torch anyway

    root, split, manifest = eval_split(dataset, class_names)
    k = len(class_names)
    correct, total = np.zeros(k, np.int64), np.zeros(k, np.int64)
    images: list[np.ndarray] = []
    labels: list[int] = []

    def flush():
        predicted = labeler(torch.from_numpy(np.stack(images))).argmax(dim=1).cpu().numpy()
        truth = np.asarray(labels)
        np.add.at(total, truth, 1)
        np.add.at(correct, truth, predicted == truth)
        if progress:
            progress.update(len(images))
        images.clear()
        labels.clear()

    for _, image, cls, _ in iter_samples(root / f for f in manifest.splits[split].shard_files()):
        images.append(image)
        labels.append(cls)
        if len(images) == batch_size:
            flush()
    if images:
        flush()
    if not total.sum():
        raise Cifar5mError(f"--labeler-eval {dataset}: split {split} is empty; give a labelled test set")
    per_class = tuple(float(c / t) if t else float("nan") for c, t in zip(correct, total))
    return LabelerAccuracy(
        dataset_name(dataset),
        split,
        manifest.data_sha256()[:16],
        int(total.sum()),
        float(correct.sum() / total.sum()),
        per_class,
    )


def dataset_name(dataset: str) -> str:
    """The evaluation set as recorded: a URL as given, a local folder by its own name (never its path)."""
    return str(dataset) if is_url(dataset) else portable_path(dataset)


def recorded_accuracy(out_dir: str, labeler_weights: InputIdentity, dataset: str) -> dict | None:
    """The accuracy a previous run of this dataset recorded for the same labeler weights and evaluation set."""
    config = recorded_config(out_dir)
    labeler = config.get("labeler", {})
    record = labeler.get("accuracy")
    weights = labeler.get("weights")
    if (
        isinstance(weights, dict)
        and weights.get("sha256") == labeler_weights.sha256
        and isinstance(record, dict)
        and record.get("dataset") == dataset_name(dataset)
    ):
        return record
    return None


def check_minimum(record: dict, minimum: float | None, labeler_spec: str) -> None:
    if minimum is not None and record["accuracy"] < minimum:
        raise Cifar5mError(
            f"--labeler {labeler_spec}: {describe(record)}, below --min-labeler-accuracy "
            f"{minimum:.2%}; fine-tune it further or choose a better labeler"
        )


def measured_plan(plan, device: str, progress=None):
    """The plan with its labeler's accuracy recorded (measured now, or reused from the folder on a resume)."""
    cfg = plan.cfg
    record = recorded_accuracy(cfg.out_dir, plan.labeler.weights, cfg.labeler_eval)
    if record is None:
        eval_split(cfg.labeler_eval, plan.class_names)  # fail on a wrong set before loading any weights
        model = create_labeler_model(plan.labeler, len(plan.class_names))
        labeler = Labeler(model, resolve_device(device, Cifar5mError), TORCH_DTYPES[plan.dtype])
        record = measure_accuracy(labeler, cfg.labeler_eval, plan.class_names, progress=progress).record()
    check_minimum(record, cfg.min_labeler_accuracy, plan.labeler.spec)
    return dataclasses.replace(plan, labeler_accuracy=record)
