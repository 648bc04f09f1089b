"""The demo's pieces at a tiny size: the real digits split, both trainings (the labeler through the
trainer's finetune), the saved folders as diffusers, timm and cifar5m's labeler load them, the quality
check, the CLI, and the committed models in demo/models/."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar5m.label import Labeler, read_labeler_info
from demo.cli import main
from demo.data import CLASS_NAMES, digits_to_uint8, load_digits_split, write_real_digits
from demo.diffusion import DiffusionConfig, load_pipeline, sample_digits, save_pipeline, train_diffusion
from demo.errors import DemoError
from demo.labeler import LABELER_PRESET, labeler_run_config, load_labeler, predict_proba
from demo.quality import generator_quality, holdout_accuracy, label_stats, synthetic_vs_real
from demo.train_models import DDPM_DIR, LABELER_DIR, DemoModelsConfig, train_models
from shards import load_manifest, load_split
from train.core.augment import EvalView

COMMITTED = Path(__file__).resolve().parents[1] / "demo" / "models"
TINY_DIFFUSION = DiffusionConfig(block_out_channels=(8, 16), steps=3, batch_size=16)


@pytest.fixture(scope="module")
def split():
    return load_digits_split(0)


@pytest.fixture(scope="module")
def tiny_models_dir(tmp_path_factory):
    """Both models trained a few steps by train_models (the labeler through the trainer's finetune)."""
    out = tmp_path_factory.mktemp("models")
    cfg = DemoModelsConfig(diffusion=TINY_DIFFUSION, labeler_steps=3, quality_samples=12, quality_steps=2, threads=1)
    return out, cfg, train_models(out, cfg)


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


def test_labeler_folder_is_a_timm_model_the_generator_loads(tiny_models_dir, split):
    import timm
    import timm.data

    out, _, metrics = tiny_models_dir
    folder = out / LABELER_DIR
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
        "training.json",
    ]  # no dataset, run or checkpoint left
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and config["num_classes"] == 10
    assert config["label_names"] == CLASS_NAMES
    assert config["finetune"]["aug"] == "crop" and config["finetune"]["steps"] == 3
    assert (config["finetune"]["data"], config["finetune"]["out_dir"]) == ("real-digits", "training")
    assert config["label_accuracy_on"] == "real-digits/test (539 images)"
    model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    data_config = timm.data.resolve_model_data_config(model)
    assert data_config["input_size"] == (1, 32, 32)
    assert tuple(data_config["mean"]) == (0.5,) and tuple(data_config["std"]) == (0.5,)
    info = read_labeler_info(f"local-dir:{folder}", None)  # as `cifar5m generate --labeler local-dir:` reads it
    assert info.num_classes == 10 and info.label_names == tuple(CLASS_NAMES)
    assert info.accuracy_note.endswith("on real-digits/test (539 images)")
    # The trainer's evaluation and the generator's labelling path measure the same accuracy.
    assert metrics[LABELER_DIR]["holdout_accuracy"] == pytest.approx(config["label_accuracy"], abs=1e-9)
    probs = predict_proba(load_labeler(folder), split.holdout_images)
    assert probs.shape == (539, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    training = json.loads((folder / "training.json").read_text())
    assert training["config"]["steps"] == 3 and training["data"]["split_seed"] == 0


def test_the_trainer_sees_digits_as_the_labeler_does(split):
    # Trained through EvalView, applied through cifar5m's Labeler: both resize 8 -> 32 bilinearly and
    # normalise to [-1, 1], so the labeler labels what it learned from.
    import timm

    model = timm.create_model("test_resnet", in_chans=1, num_classes=10)
    model.pretrained_cfg = {
        **model.pretrained_cfg,
        "input_size": (1, 32, 32),
        "interpolation": "bilinear",
        "mean": (0.5,),
        "std": (0.5,),
    }
    x = torch.from_numpy(split.holdout_images[:16])
    assert torch.allclose(EvalView(32)(x), Labeler(model, "cpu").preprocess(x), atol=1e-6)


def test_labeler_preset_is_the_trainers_config():
    cfg = labeler_run_config("data", "out", steps=100, seed=3)
    assert (cfg.model, cfg.image_size, cfg.aug, cfg.crop_padding) == ("timm:test_resnet", 32, "crop", 1)
    assert (cfg.steps, cfg.warmup_steps, cfg.seed) == (100, 30, 3)
    assert labeler_run_config("data", "out").steps == LABELER_PRESET["steps"]


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
        float((split.holdout_labels == 1).mean())
    )


def test_label_stats():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    stats = label_stats(probs)
    assert stats["class_counts"] == [2, 1] and stats["mean_confidence"] == pytest.approx(2.3 / 3)


def test_train_models_writes_measured_folders_and_refuses_to_clobber(tiny_models_dir):
    out, cfg, metrics = tiny_models_dir
    labeler_dir, ddpm_dir = out / LABELER_DIR, out / DDPM_DIR
    saved = json.loads((labeler_dir / "metrics.json").read_text())
    assert saved == metrics[LABELER_DIR] and 0.0 <= saved["holdout_accuracy"] <= 1.0
    assert saved["holdout"]["count"] == 539
    ddpm = json.loads((ddpm_dir / "metrics.json").read_text())
    assert ddpm["labels"]["count"] == 12 and sum(ddpm["labels"]["class_counts"]) == 12
    assert [row["n"] for row in ddpm["synthetic_vs_real"]["rows"]] == [12]
    training = json.loads((ddpm_dir / "training.json").read_text())
    assert training["data"]["holdout_indices"] == load_digits_split(0).holdout_indices.tolist()
    assert training["config"]["steps"] == 3
    assert not list(out.glob(".tmp-*"))
    with pytest.raises(DemoError, match="already exists; pass --overwrite"):
        train_models(out, cfg)


def test_only_labeler_retrains_it_and_remeasures_the_untouched_diffusion_model(tiny_models_dir, tmp_path):
    trained, cfg, _ = tiny_models_dir
    out = tmp_path / "models"
    shutil.copytree(trained, out)

    def ddpm_files() -> dict:
        return {p.relative_to(out): p.read_bytes() for p in (out / DDPM_DIR).rglob("*") if p.is_file()}

    before = ddpm_files()
    threads_before = torch.get_num_threads()
    again = train_models(out, dataclasses.replace(cfg, only=("labeler",), labeler_steps=2), overwrite=True)
    assert torch.get_num_threads() == threads_before
    assert json.loads((out / LABELER_DIR / "training.json").read_text())["config"]["steps"] == 2
    after = ddpm_files()
    metrics_json = Path(DDPM_DIR) / "metrics.json"
    assert {k: v for k, v in after.items() if k != metrics_json} == {
        k: v for k, v in before.items() if k != metrics_json
    }  # weights untouched
    assert json.loads(after[metrics_json]) == again[DDPM_DIR] and again[DDPM_DIR]["labels"]["count"] == 12
    with pytest.raises(DemoError, match="measured with the labeler"):
        train_models(tmp_path / "empty", dataclasses.replace(cfg, only=("ddpm",)))
    with pytest.raises(DemoError, match="--only=gan: give one or more of labeler, ddpm"):
        train_models(tmp_path / "empty", dataclasses.replace(cfg, only=("gan",)))


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
        "train": len(split.train_labels),
        "test": len(split.holdout_labels),
    }
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
    labeler = load_labeler(COMMITTED / LABELER_DIR)  # the generator's own loader (local-dir:)
    probs = predict_proba(labeler, split.holdout_images)
    accuracy = float((probs.argmax(axis=1) == split.holdout_labels).mean())
    recorded = json.loads((COMMITTED / LABELER_DIR / "metrics.json").read_text())
    config = json.loads((COMMITTED / LABELER_DIR / "config.json").read_text())
    assert accuracy == pytest.approx(recorded["holdout_accuracy"], abs=1e-6) and accuracy >= 0.995
    assert accuracy == pytest.approx(config["label_accuracy"], abs=1e-6)  # the trainer's own measurement
    assert config["finetune"]["model"] == "timm:test_resnet" and config["finetune"]["aug"] == "crop"
    for name in (LABELER_DIR, DDPM_DIR):
        training = json.loads((COMMITTED / name / "training.json").read_text())
        assert training["data"]["indices_sha256"] == split.describe()["indices_sha256"]
    unet, scheduler = load_pipeline(COMMITTED / DDPM_DIR)
    images = sample_digits(unet, scheduler, 32, steps=10, seed=0)
    assert label_stats(predict_proba(labeler, images))["mean_confidence"] > 0.8
