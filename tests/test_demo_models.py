"""The demo's pieces at a tiny size: the real digits split, both trainers, the saved folders as diffusers
and timm load them, the quality check, the CLI, and the committed models in demo/models/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from demo.cli import main
from demo.data import CLASS_NAMES, digits_to_uint8, load_digits_split, write_real_digits
from demo.diffusion import DiffusionConfig, load_pipeline, sample_digits, save_pipeline, train_diffusion
from demo.errors import DemoError
from demo.labeler import (DATA_CONFIG, LabelerConfig, load_labeler, predict_proba, preprocess, random_shift,
                          save_labeler, train_labeler)
from demo.quality import generator_quality, holdout_accuracy, label_stats, synthetic_vs_real
from demo.train_models import DDPM_DIR, LABELER_DIR, DemoModelsConfig, train_models
from shards import load_manifest, load_split

COMMITTED = Path(__file__).resolve().parents[1] / "demo" / "models"
TINY_DIFFUSION = DiffusionConfig(block_out_channels=(8, 16), steps=3, batch_size=16)


@pytest.fixture(scope="module")
def split():
    return load_digits_split(0)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny_labeler_dir(tmp_path_factory, split):
    model = train_labeler(split.train_images[:128], split.train_labels[:128],
                          LabelerConfig(epochs=1, batch_size=64), progress=False)
    out = tmp_path_factory.mktemp("labeler")
    save_labeler(model, out, CLASS_NAMES)
    return out, model


@pytest.fixture(scope="module")
def tiny_ddpm_dir(tmp_path_factory, split):
    unet, scheduler = train_diffusion(split.train_images, TINY_DIFFUSION, progress=False)
    out = tmp_path_factory.mktemp("ddpm")
    save_pipeline(unet, scheduler, out)
    return out, unet


def test_digits_scaled_to_uint8_by_255_over_16():
    assert digits_to_uint8(np.array([0, 1, 8, 15, 16])).tolist() == [0, 16, 128, 239, 255]


def test_split_is_seeded_stratified_disjoint_and_complete(split):
    again, other = load_digits_split(0), load_digits_split(1)
    assert np.array_equal(split.holdout_indices, again.holdout_indices)
    assert np.array_equal(split.train_images, again.train_images)
    assert not np.array_equal(split.holdout_indices, other.holdout_indices)
    assert len(split.train_indices) + len(split.holdout_indices) == 1797
    assert not set(split.train_indices) & set(split.holdout_indices)
    assert split.train_images.shape == (len(split.train_indices), 8, 8, 1)
    assert split.train_images.dtype == np.uint8 and split.train_images.max() == 255
    per_class_train = np.bincount(split.train_labels, minlength=10)
    per_class_all = per_class_train + np.bincount(split.holdout_labels, minlength=10)
    assert np.array_equal(per_class_train, np.rint(0.7 * per_class_all).astype(int))
    info = split.describe()
    assert info["holdout_indices"] == split.holdout_indices.tolist()
    assert info["indices_sha256"] != other.describe()["indices_sha256"]


def test_random_shift_moves_content_and_keeps_shape():
    image = np.zeros((1, 8, 8, 1), np.uint8)
    image[0, 4, 4, 0] = 200
    shifted = random_shift(np.repeat(image, 50, axis=0), 1, np.random.default_rng(0))
    assert shifted.shape == (50, 8, 8, 1)
    positions = {tuple(np.argwhere(s[..., 0])[0]) for s in shifted}
    assert positions == {(y, x) for y in (3, 4, 5) for x in (3, 4, 5)}


def test_labeler_folder_loads_with_timm_local_dir(tiny_labeler_dir, split):
    import timm
    import timm.data

    folder, trained = tiny_labeler_dir
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and config["num_classes"] == 10
    assert config["label_names"] == CLASS_NAMES
    model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    for (name, want), got in zip(trained.state_dict().items(), model.state_dict().values()):
        assert torch.equal(want, got), name
    data_config = timm.data.resolve_model_data_config(model)
    assert data_config["input_size"] == (1, 32, 32)
    assert tuple(data_config["mean"]) == (0.5,) and tuple(data_config["std"]) == (0.5,)
    loaded, loaded_config = load_labeler(folder)
    assert np.allclose(predict_proba(trained, split.holdout_images[:32], DATA_CONFIG),
                       predict_proba(loaded, split.holdout_images[:32], loaded_config), atol=1e-6)


def test_preprocess_matches_timm_eval_transform(split):
    import timm.data
    from PIL import Image

    transform = timm.data.create_transform(**DATA_CONFIG)
    images = split.holdout_images[:8]
    want = torch.stack([transform(Image.fromarray(im[..., 0], mode="L")) for im in images])
    # PIL resizes to uint8 with fixed-point weights: within one grey level, 2/255 after dividing by std 0.5.
    assert torch.allclose(preprocess(images, DATA_CONFIG), want, atol=2 / 255)


def test_ddpm_folder_loads_with_diffusers(tiny_ddpm_dir):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    folder, trained = tiny_ddpm_dir
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
    for (name, want), got in zip(trained.state_dict().items(), unet.state_dict().values()):
        assert torch.equal(want, got), name
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    assert scheduler.config.num_train_timesteps == 1000 and scheduler.config.beta_schedule == "linear"
    assert isinstance(DDPMPipeline.from_pretrained(folder).unet, UNet2DModel)


def test_sampling_is_seeded_uint8_nhwc(tiny_ddpm_dir):
    unet, scheduler = load_pipeline(tiny_ddpm_dir[0])
    first = sample_digits(unet, scheduler, 6, steps=2, seed=3, batch_size=4)
    again = sample_digits(unet, scheduler, 6, steps=2, seed=3, batch_size=4)
    assert first.shape == (6, 8, 8, 1) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, sample_digits(unet, scheduler, 6, steps=2, seed=4, batch_size=4))


def test_diffusion_training_is_repeatable(split):
    cfg = DiffusionConfig(block_out_channels=(8, 16), steps=2, batch_size=8)
    a, _ = train_diffusion(split.train_images, cfg, progress=False)
    b, _ = train_diffusion(split.train_images, cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_synthetic_vs_real_on_real_digits_and_on_one_class(split):
    result = synthetic_vs_real(split.train_images, split.train_labels, split, sizes=(500, 5000))
    assert [row["n"] for row in result["rows"]] == [500] and result["skipped_sizes"] == [5000]
    assert result["rows"][0]["synthetic_to_real_accuracy"] > 0.95
    ones = np.ones(20, np.int64)
    assert holdout_accuracy(split.train_images[:20], ones, split) == pytest.approx(
        float((split.holdout_labels == 1).mean()))


def test_label_stats():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    stats = label_stats(probs)
    assert stats["class_counts"] == [2, 1] and stats["mean_confidence"] == pytest.approx(2.3 / 3)


def test_train_models_writes_measured_folders_and_refuses_to_clobber(tmp_path):
    cfg = DemoModelsConfig(diffusion=TINY_DIFFUSION, labeler=LabelerConfig(epochs=1),
                           quality_samples=12, quality_steps=2, threads=1)
    threads_before = torch.get_num_threads()
    metrics = train_models(tmp_path, cfg)
    assert torch.get_num_threads() == threads_before
    labeler_dir, ddpm_dir = tmp_path / LABELER_DIR, tmp_path / DDPM_DIR
    saved = json.loads((labeler_dir / "metrics.json").read_text())
    assert saved == metrics[LABELER_DIR] and 0.0 <= saved["holdout_accuracy"] <= 1.0
    ddpm = json.loads((ddpm_dir / "metrics.json").read_text())
    assert ddpm["labels"]["count"] == 12 and sum(ddpm["labels"]["class_counts"]) == 12
    assert [row["n"] for row in ddpm["synthetic_vs_real"]["rows"]] == [12]
    training = json.loads((ddpm_dir / "training.json").read_text())
    assert training["data"]["holdout_indices"] == load_digits_split(0).holdout_indices.tolist()
    assert training["config"]["steps"] == 3
    assert not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(DemoError, match="already exists; pass --overwrite"):
        train_models(tmp_path, cfg)


def test_cli_reports_bad_flags_in_one_line(tmp_path, capsys):
    assert main(["train-models", "--out", str(tmp_path), "--diffusion-steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --diffusion-steps=0: must be >= 1"
    assert main(["quality", "--data", str(tmp_path), "--sizes", "5,x"]) == 2
    assert "--sizes='5,x': must be comma-separated integers >= 1" in capsys.readouterr().err
    assert main(["train-models", "--out", str(tmp_path / "m"), "--dry-run"]) == 0
    assert not (tmp_path / "m").exists()


def test_real_digits_dataset_round_trips_split_and_labels(tmp_path, split):
    assert main(["real-digits", "--out", str(tmp_path), "--samples-per-shard", "400"]) == 0
    manifest = load_manifest(tmp_path)
    assert manifest.class_names == CLASS_NAMES
    assert {name: s.count for name, s in manifest.splits.items()} == {
        "train": len(split.train_labels), "test": len(split.holdout_labels)}
    test = load_split(tmp_path, "test")
    assert np.array_equal(np.asarray(test.images), split.holdout_images)
    assert np.array_equal(np.asarray(test.labels), split.holdout_labels)
    train = load_split(tmp_path, "train")
    assert np.array_equal(np.asarray(train.labels), split.train_labels)


def test_generator_quality_reads_a_shards_dataset(tmp_path, split):
    write_real_digits(tmp_path, samples_per_shard=1000)
    result = generator_quality(tmp_path, split="train", sizes=(500,))
    assert result["synthetic_count"] == len(split.train_labels)
    assert result["class_counts"] == np.bincount(split.train_labels, minlength=10).tolist()
    assert result["rows"][0]["n"] == 500 and result["rows"][0]["synthetic_to_real_accuracy"] > 0.95


def test_committed_models_load_and_match_their_split_and_metrics(split):
    # The models ship with the package (`make demo-models` rewrites them): missing ones are a failure.
    for name in (LABELER_DIR, DDPM_DIR):
        assert (COMMITTED / name / "metrics.json").is_file(), f"{COMMITTED / name}: shipped model missing"
    labeler, data_config = load_labeler(COMMITTED / LABELER_DIR)
    probs = predict_proba(labeler, split.holdout_images, data_config)
    accuracy = float((probs.argmax(axis=1) == split.holdout_labels).mean())
    recorded = json.loads((COMMITTED / LABELER_DIR / "metrics.json").read_text())
    assert accuracy == pytest.approx(recorded["holdout_accuracy"], abs=1e-6) and accuracy >= 0.98
    for name in (LABELER_DIR, DDPM_DIR):
        training = json.loads((COMMITTED / name / "training.json").read_text())
        assert training["data"]["indices_sha256"] == split.describe()["indices_sha256"]
    unet, scheduler = load_pipeline(COMMITTED / DDPM_DIR)
    images = sample_digits(unet, scheduler, 32, steps=10, seed=0)
    assert label_stats(predict_proba(labeler, images, data_config))["mean_confidence"] > 0.8
