"""How good is the digits generator? Numbers the demo's report states as they are.

The synthetic-vs-real check: the same classifier (an RBF SVM on raw pixels, deterministic and ~1 s)
trained on n synthetic digits and on n real train digits, both tested on the real holdout that neither
the diffusion model nor the labeler saw. If synthetic data were a perfect stand-in the two accuracies
would match; the difference is the price of learning from the generator instead of the world.

    python -m demo quality --data out/demo/synthetic      # a generated shards dataset
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from demo.data import DEFAULT_SPLIT_SEED, DigitsSplit, load_digits_split
from shards import load_split, resolve_dataset

DEFAULT_SIZES = (500, 1000)


def _features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


def holdout_accuracy(train_images: np.ndarray, train_labels: np.ndarray, real: DigitsSplit) -> float:
    """Accuracy on the real holdout of an RBF SVM fitted to the given images.

    A generator can collapse to one class; the SVM cannot fit that, and the honest classifier for it
    predicts that one class everywhere.
    """
    from sklearn.svm import SVC  # heavy (scipy); only the check needs it

    classes = np.unique(train_labels)
    if len(classes) == 1:
        return float((real.holdout_labels == classes[0]).mean())
    clf = SVC(kernel="rbf", gamma="scale", C=10.0).fit(_features(train_images), train_labels)
    return float((clf.predict(_features(real.holdout_images)) == real.holdout_labels).mean())


def synthetic_vs_real(
    synth_images: np.ndarray,
    synth_labels: np.ndarray,
    real: DigitsSplit,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    seed: int = 0,
) -> dict:
    """For each n: holdout accuracy when trained on the first n synthetic digits vs on n real ones
    (a seeded subset of the real train split). Sizes larger than either pool are skipped and listed."""
    rng = np.random.default_rng(seed)
    rows, skipped = [], []
    for n in sizes:
        if n > len(synth_images) or n > len(real.train_images):
            skipped.append(int(n))
            continue
        real_idx = np.sort(rng.choice(len(real.train_images), size=n, replace=False))
        rows.append(
            {
                "n": int(n),
                "synthetic_to_real_accuracy": holdout_accuracy(synth_images[:n], synth_labels[:n], real),
                "real_to_real_accuracy": holdout_accuracy(
                    real.train_images[real_idx], real.train_labels[real_idx], real
                ),
            }
        )
    return {
        "classifier": "sklearn SVC(rbf, gamma=scale, C=10) on raw pixels / 255",
        "test_set": f"real holdout ({len(real.holdout_labels)} digits, split seed {real.seed})",
        "rows": rows,
        "skipped_sizes": skipped,
    }


def label_stats(probs: np.ndarray) -> dict:
    """Mean confidence (max probability) and the histogram of predicted classes."""
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    return {
        "count": int(len(probs)),
        "mean_confidence": float(probs.max(axis=1).mean()),
        "class_counts": [int(c) for c in counts],
    }


def generator_quality(
    data_dir: str | Path,
    split: str = "train",
    split_seed: int = DEFAULT_SPLIT_SEED,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    seed: int = 0,
) -> dict:
    """The synthetic-vs-real check on a generated shards dataset (read with `shards.load_split`),
    plus its label histogram. `split_seed` must be the one the demo models were trained with."""
    arrays = load_split(resolve_dataset(str(data_dir)), split)
    images, labels = np.asarray(arrays.images), np.asarray(arrays.labels)
    result = synthetic_vs_real(images, labels, load_digits_split(split_seed), sizes=sizes, seed=seed)
    counts = np.bincount(labels, minlength=10)
    result.update(
        {
            "dataset": str(data_dir),
            "split": split,
            "synthetic_count": int(len(labels)),
            "class_counts": [int(c) for c in counts],
        }
    )
    return result
