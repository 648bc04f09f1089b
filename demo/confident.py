"""The demo's label-quality filter: the generated digits whose labeler top probability reaches a threshold.

Why: with every generated digit kept, the labeler's top probability is below 0.9 on about one synthetic
digit in six, and two labelers of equal accuracy on real digits disagree on 8% of them; the soft-error
gap between the worlds is then mostly how each memorises ambiguous labels, and a change of labeler flips
its sign. Keeping the digits the labeler is confident about (the generator conditioned on that event, for
train and test alike) leaves a task whose labels are a function of the image, as CIFAR-5m's are meant to be.
The kept fraction and the threshold go in the subset's manifest config and card.
"""

from __future__ import annotations

from pathlib import Path

from shards import CardInfo, DatasetWriter, iter_samples, load_manifest


def confident_samples(source: Path, split: str, min_confidence: float) -> tuple[list[dict], int]:
    """The samples of `split` (in order) whose recorded `max_prob` is >= min_confidence, and the split's size.
    The demo's pools are small (8x8 digits): they are held in memory."""
    urls = [source / s.file for s in load_manifest(source).splits[split].shards]
    kept, total = [], 0
    for _, image, cls, meta in iter_samples(urls):
        total += 1
        if meta["max_prob"] >= min_confidence:
            kept.append({"image": image, "cls": cls, "json": meta})
    return kept, total


def write_confident_subset(
    source: Path, out: Path, min_confidence: float, source_sha256: str, samples_per_shard: int, overwrite: bool = False
):
    """Write the samples of every split of `source` with max_prob >= min_confidence to `out`, in order;
    each keeps its json (seed, index in the source split, probs). Returns the manifest."""
    manifest = load_manifest(source)
    kept = {split: confident_samples(source, split, min_confidence) for split in manifest.splits}
    fractions = {split: round(len(samples) / max(total, 1), 4) for split, (samples, total) in kept.items()}
    config = {
        "kind": "confident-subset",
        "source_sha256": source_sha256,
        "min_confidence": min_confidence,
        "source_counts": {split: total for split, (_, total) in kept.items()},
        "kept_fraction": fractions,
    }
    writer = DatasetWriter(
        out,
        config=config,
        class_names=manifest.class_names,
        splits={split: len(samples) for split, (samples, _) in kept.items()},
        samples_per_shard=samples_per_shard,
        image_ext="png",
        card=_card(min_confidence, fractions),
        overwrite=overwrite,
    )
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, kept[spec.split][0][spec.first_index : spec.first_index + spec.count])
    return writer.finalize()


def _card(min_confidence: float, fractions: dict) -> CardInfo:
    kept = ", ".join(f"{split} {100 * f:.1f}%" for split, f in fractions.items())
    return CardInfo(
        pretty_name="Synthetic digits the labeler is confident about",
        description=(
            f"The generated digits of the demo's synthetic pool whose labeler top probability "
            f"(`json.max_prob`) is at least {min_confidence}, in their original order (kept: {kept}). "
            "`json.index` is a digit's position in the unfiltered split."
        ),
        license="cc-by-4.0",
        tags=("deep-bootstrap", "webdataset", "digits", "synthetic"),
    )
