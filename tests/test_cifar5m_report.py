"""`report`: FID/KID arithmetic with small injected features, nearest neighbours, and the written report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cifar5m.cli import main
from cifar5m.report import frechet_distance, kernel_distance, nearest_neighbours, write_report
from shards import DatasetWriter

CLASSES = ["ant", "bee", "cow"]


def colour_features(images: np.ndarray) -> np.ndarray:
    """A small stand-in for Inception: per-channel mean and std of each image (6 features)."""
    x = images.reshape(len(images), -1, images.shape[-1]).astype(np.float64)
    return np.concatenate([x.mean(1), x.std(1)], axis=1)


def write_dataset(out, images, labels, max_prob=None):
    writer = DatasetWriter(out, {"kind": "test"}, CLASSES, {"train": len(images)}, 16)
    writer.prepare()
    for spec in writer.pending():
        rows = range(spec.first_index, spec.first_index + spec.count)
        writer.write_shard(
            spec,
            (
                {
                    "image": images[i],
                    "cls": int(labels[i]),
                    **({"json": {"max_prob": float(max_prob[i])}} if max_prob is not None else {}),
                }
                for i in rows
            ),
        )
    writer.finalize()
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("report")
    real = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    fake = np.clip(rng.normal(150, 30, (36, 8, 8, 3)), 0, 255).astype(np.uint8)
    fake[3] = real[7]  # a memorised sample: its nearest real image is real[7]
    labels = np.arange(36) % 3
    probs = np.where(labels == 0, 0.9, 0.6)
    gen = write_dataset(root / "gen", fake, labels, probs)
    ref = write_dataset(root / "real", real, np.arange(40) % 3)
    return gen, ref, fake, real


def test_fid_of_identical_feature_sets_is_zero():
    features = np.random.default_rng(1).normal(size=(500, 6))
    assert abs(frechet_distance(features, features)) < 1e-8


def test_fid_of_two_gaussians_matches_the_closed_form():
    """N(0, I) vs N(m, s^2 I) in d dimensions: FID = |m|^2 + d (1 - s)^2 (here 1 + 4 * 1 = 5)."""
    rng = np.random.default_rng(2)
    d, s, m = 4, 2.0, np.array([1.0, 0, 0, 0])
    a, b = rng.normal(size=(200_000, d)), m + s * rng.normal(size=(200_000, d))
    assert frechet_distance(a, b) == pytest.approx(m @ m + d * (1 - s) ** 2, abs=0.05)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(400, 6)), rng.normal(size=(400, 6)), 1 + rng.normal(size=(400, 6))
    same, same_std = kernel_distance(a, b, subset=200)
    other, _ = kernel_distance(a, c, subset=200)
    assert abs(same) < 2 * same_std  # unbiased MMD^2: zero within its spread over subsets
    assert other > 100 * abs(same)


def test_nearest_neighbour_finds_a_copied_image(datasets):
    _, _, fake, real = datasets
    index = nearest_neighbours(fake[:5], real, k=3)
    assert index.shape == (5, 3) and index[3, 0] == 7


def test_report_numbers_and_files(datasets):
    gen, ref, fake, real = datasets
    path = write_report(str(gen), str(ref), samples=30, extractor=colour_features)
    numbers = json.loads((gen / "extras" / "report.json").read_text())
    assert numbers["samples"] == 30 and numbers["reference_samples"] == 30
    assert numbers["fid"] == pytest.approx(frechet_distance(colour_features(fake[:30]), colour_features(real[:30])))
    assert numbers["fid"] > 100  # N(150, 30) noise vs uniform noise: far apart in these features
    assert numbers["class_counts"] == [12, 12, 12]
    assert numbers["confidence_per_class"] == pytest.approx([0.9, 0.6, 0.6])
    text = path.read_text()
    assert f"| FID (torch-fidelity, TF-compatible Inception, 30 vs 30) | {numbers['fid']:.2f} |" in text
    assert "| ant | 12 | 33.3% | 0.900 |" in text
    for png in ("class_balance", "confidence_per_class", "sample_grid", "nearest_neighbours"):
        assert (gen / "extras" / f"{png}.png").stat().st_size > 1000


def test_a_dataset_against_itself_scores_zero(datasets):
    gen, *_ = datasets
    write_report(str(gen), str(gen), samples=30, extractor=colour_features)
    numbers = json.loads((gen / "extras" / "report.json").read_text())
    assert abs(numbers["fid"]) < 1e-6
    assert numbers["confidence_per_class"] == pytest.approx([0.9, 0.6, 0.6])


def test_cli_without_fid_and_without_inception_weights(datasets, tmp_path, capsys):
    gen, ref, *_ = datasets
    assert main(["report", str(gen), "--reference", str(ref), "--no-fid", "--samples", "20"]) == 0
    assert "FID not measured at 20 samples" in capsys.readouterr().out
    assert "| FID (torch-fidelity" in (gen / "extras" / "report.md").read_text()
    missing = tmp_path / "inception.pth"
    assert main(["report", str(gen), "--reference", str(ref), "--inception-weights", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"Inception weights not found at {missing}: download https://" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A weights file for torch-fidelity's InceptionV3 with random values (the real file is a download):
    the architecture is built with loading switched off, then its own state dict is saved."""
    import torch
    from torch_fidelity import feature_extractor_inceptionv3 as module

    download, load = module.load_state_dict_from_url, torch.nn.Module.load_state_dict
    module.load_state_dict_from_url = lambda *a, **k: {}  # never reach the network
    torch.nn.Module.load_state_dict = lambda self, *a, **k: None
    try:
        torch.manual_seed(0)
        model = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        module.load_state_dict_from_url, torch.nn.Module.load_state_dict = download, load
    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path


def test_inception_extractor_maps_uint8_images_to_2048_features(random_inception_weights):
    from cifar5m.report import inception_extractor

    extract = inception_extractor(str(random_inception_weights), batch_size=3)
    images = np.random.default_rng(4).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    features = extract(images)
    assert features.shape == (4, 2048) and features.dtype == np.float64 and np.isfinite(features).all()
    np.testing.assert_allclose(extract(images[2:3]), features[2:3], rtol=1e-4, atol=1e-5)  # batching-free


def test_damaged_inception_weights_are_a_clear_error(tmp_path, capsys, datasets):
    gen, ref, *_ = datasets
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["report", str(gen), "--reference", str(ref), "--inception-weights", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not torch-fidelity's Inception weights" in err and err.count("\n") == 1
