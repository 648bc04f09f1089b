"""The demo's label filter: exactly the digits whose labeler top probability reaches the threshold, in
order, with the threshold and kept fractions in the subset's manifest and card; too few left is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from demo_fixtures import tiny_cfg

from demo.confident import write_confident_subset
from demo.config import DemoConfig
from demo.errors import DemoError
from demo.pipeline import confident_pool, run_demo
from shards import DatasetWriter, iter_samples, load_manifest

COUNTS = {"train": 50, "test": 20}


@pytest.fixture()
def pool(tmp_path):
    """A labelled pool whose samples record a seeded max_prob, as `cifar5m generate` writes them."""
    rng = np.random.default_rng(0)
    out = tmp_path / "synthetic"
    writer = DatasetWriter(
        out, config={"kind": "test-pool"}, class_names=[str(d) for d in range(10)], splits=COUNTS, samples_per_shard=16
    )
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(
            spec,
            (
                {
                    "image": rng.integers(0, 256, (8, 8, 1), dtype=np.uint8),
                    "cls": int(rng.integers(10)),
                    "json": {"index": i, "max_prob": float(rng.uniform(0.1, 1.0))},
                }
                for i in range(spec.first_index, spec.first_index + spec.count)
            ),
        )
    writer.finalize()
    return out


def _samples(folder, split):
    manifest = load_manifest(folder)
    return list(iter_samples(folder / s.file for s in manifest.splits[split].shards))


def test_keeps_exactly_the_confident_samples_in_order(pool, tmp_path):
    manifest = write_confident_subset(pool, tmp_path / "confident", 0.6, "ab" * 32, samples_per_shard=8)
    for split in COUNTS:
        source = _samples(pool, split)
        wanted = [(meta["index"], cls, image.tobytes()) for _, image, cls, meta in source if meta["max_prob"] >= 0.6]
        kept = [
            (meta["index"], cls, image.tobytes()) for _, image, cls, meta in _samples(tmp_path / "confident", split)
        ]
        assert kept == wanted and 0 < len(kept) < COUNTS[split]
        assert manifest.config["kept_fraction"][split] == round(len(kept) / COUNTS[split], 4)
    assert manifest.config["min_confidence"] == 0.6 and manifest.config["source_sha256"] == "ab" * 32
    card = (tmp_path / "confident" / "README.md").read_text()
    assert "top probability (`json.max_prob`) is at least 0.6" in card


def test_too_few_confident_digits_is_one_clear_line(pool, tmp_path):
    cfg = DemoConfig(
        out_dir=str(tmp_path / "out"),
        train=50,
        test=20,
        samples_per_shard=16,
        n=10,
        steps=4,
        batch_size=10,
        min_confidence=0.9,
    )
    kept = sum(meta["max_prob"] >= 0.9 for _, _, _, meta in _samples(pool, "train"))
    assert kept < 40  # the seeded pool: fewer confident train digits than 4 x 10 draws
    with pytest.raises(
        DemoError,
        match=rf"{kept:,} of the 50 synthetic train digits have labeler top "
        r"probability >= 0.9, fewer than the 40 the bootstrap draws; raise --train",
    ):
        confident_pool(cfg, pool)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("min_confidence", 1.0, r"--min-confidence=1.0: must be in \[0, 1\) \(0 keeps every digit\)"),
        ("min_confidence", -0.1, r"--min-confidence=-0.1: must be in \[0, 1\)"),
        ("margin", "abc", r"--margin=abc: give an absolute margin > 0"),
        ("margin", "0%", r"--margin=0%: give an absolute margin > 0"),
    ],
)
def test_bad_filter_or_margin_is_refused_before_any_work(tmp_path, field, value, message):
    with pytest.raises(DemoError, match=message):
        DemoConfig(out_dir=str(tmp_path / "out"), **{field: value}).validate()
    assert not (tmp_path / "out").exists()


def test_the_demo_trains_on_the_filtered_pool(tiny_models, tmp_path):
    # The tiny random labeler's top probability is spread over (0.25, 1] (median ~0.8): 0.6 keeps some.
    cfg = tiny_cfg(tiny_models, tmp_path / "out", steps=4, min_confidence=0.6)
    result = run_demo(cfg)
    assert [s["name"].split(" ")[0] for s in result["stages"]] == [
        "models",
        "real",
        "synthetic",
        "confident",
        "generator",
        "bootstrap:",
    ]
    pool = load_manifest(cfg.out / "confident")
    assert pool.config["min_confidence"] == 0.6 and 64 <= pool.splits["train"].count < 256
    real_cfg = json.loads((cfg.out / "bootstrap" / "seed0" / "real" / "config.json").read_text())
    assert real_cfg["data"] == str(cfg.out / "confident")
    report = (cfg.out / "bootstrap" / "report.md").read_text()
    assert "| label filter (demo/confident.py) | kept the digits with labeler top probability >= 0.6: test " in report
