"""`train finetune` / `train eval`: BiT-HyperRule pieces, the timm export, and the labeler it makes.

One tiny fine-tune (timm `test_resnet` saved as a local-dir "pretrained" backbone, 8x8 templates
upscaled to 16) is shared by the module; it runs offline on the CPU in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import build_dataset, label_of, sample_image

from train.__main__ import main
from train.core.augment import TrainAugment, mixup
from train.core.config import apply_preset
from train.core.models import zero_head
from train.core.schedule import lr_at
from train.errors import TrainError
from train.labeler.evaluate import calibration_error


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    """A "pretrained" timm folder with a 7-way head (fine-tuning must replace it with a 10-way one)."""
    import timm
    from timm.models import save_for_hf

    folder = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    save_for_hf(timm.create_model("test_resnet", num_classes=7), str(folder), safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("ft") / "data", train=200, test=60, size=8, channels=3)


def tiny_bit(data: Path, out: Path, backbone: Path, **kw):
    values = dict(
        data=str(data),
        out_dir=str(out),
        model=f"timm:local-dir:{backbone}",
        image_size=16,
        resize_size=20,
        steps=30,
        batch_size=32,
        lr=0.05,
        warmup_steps=3,
        eval_schedule="every:30",
        eval_train_samples=32,
        eval_batch_size=64,
        device="cpu",
        num_workers=0,
    )
    values.update(kw)
    return apply_preset("bit-hyperrule", values)


@pytest.fixture(scope="module")
def labeler(data, backbone, tmp_path_factory):
    from train.labeler.finetune import finetune

    out = tmp_path_factory.mktemp("labeler") / "labeler"
    return out, finetune(tiny_bit(data, out, backbone), progress=False)


def test_bit_hyperrule_preset_is_the_papers_schedule():
    cfg = apply_preset("bit-hyperrule", {})
    assert (cfg.model, cfg.pretrained, cfg.zero_init_head) == ("timm:resnetv2_152x2_bit.goog_in21k", True, True)
    assert (cfg.batch_size, cfg.steps, cfg.mixup_alpha, cfg.resize_size, cfg.image_size) == (512, 10_000, 0.1, 160, 128)
    assert lr_at(cfg, 0) == pytest.approx(0.003 / 500)  # linear warm-up
    assert lr_at(cfg, 1_000) == pytest.approx(0.003)
    assert lr_at(cfg, 3_000) == pytest.approx(3e-4)  # x0.1 at 3K, 6K, 9K
    assert lr_at(cfg, 6_500) == pytest.approx(3e-5)
    assert lr_at(cfg, 9_999) == pytest.approx(3e-6)
    # lr scales linearly with a batch size given alone (BiT README: batch 128 -> lr ~0.001)
    assert apply_preset("bit-hyperrule", {"batch_size": 128}).lr == pytest.approx(0.00075)
    assert apply_preset("bit-hyperrule", {"batch_size": 128, "lr": 0.001}).lr == 0.001


def test_resize_crop_flip_is_a_window_of_the_resized_image():
    x = torch.arange(4 * 4 * 3, dtype=torch.uint8).view(1, 4, 4, 3).repeat(64, 1, 1, 1)
    aug = TrainAugment("resize-crop-flip", padding=0, size=6, resize=8)
    out = aug(x, torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 6, 6)
    full = torch.nn.functional.interpolate(
        x[:1].permute(0, 3, 1, 2).float() / 127.5 - 1, size=(8, 8), mode="bilinear", antialias=True, align_corners=False
    )[0]
    windows = {
        (dy, dx, m): full[:, dy : dy + 6, dx : dx + 6].flip(2) if m else full[:, dy : dy + 6, dx : dx + 6]
        for dy in range(3)
        for dx in range(3)
        for m in (False, True)
    }
    seen = set()
    for view in out:
        match = [key for key, window in windows.items() if torch.allclose(view, window, atol=1e-5)]
        assert match, "every view is a 6x6 window (maybe mirrored) of the 8x8 resize"
        seen.add(match[0])
    assert len(seen) > 6  # offsets and mirrors vary across the batch


def test_mixup_mixes_each_sample_with_one_partner():
    x = torch.eye(8)[:, :, None, None].repeat(1, 1, 2, 2)
    y = torch.arange(8)
    mixed, partners, lam = mixup(x, y, alpha=0.1, seed=3, generator=torch.Generator().manual_seed(0))
    assert 0 <= lam <= 1 and sorted(partners.tolist()) == list(range(8))
    expected = lam * torch.eye(8) + (1 - lam) * torch.eye(8)[partners]
    assert torch.allclose(mixed[:, :, 0, 0], expected)
    again = mixup(x, y, alpha=0.1, seed=3, generator=torch.Generator().manual_seed(0))
    assert again[2] == lam and torch.equal(again[1], partners)  # a function of the seeds


def test_zero_head_zeroes_a_timm_classifier():
    import timm

    model = timm.create_model("test_resnet", num_classes=3)
    zero_head(model)
    assert not model.get_classifier().weight.any() and not model.get_classifier().bias.any()
    assert torch.equal(model(torch.randn(2, 3, 16, 16)), torch.zeros(2, 3))


def test_calibration_error_from_first_principles():
    # two bins: conf 0.95 (4 samples, 3 right: |0.75 - 0.95|) and 0.55 (4 samples, 2 right: |0.5 - 0.55|)
    conf = np.array([0.95] * 4 + [0.55] * 4)
    correct = np.array([1, 1, 1, 0, 1, 1, 0, 0], dtype=float)
    assert calibration_error(conf, correct) == pytest.approx(0.5 * 0.2 + 0.5 * 0.05)
    assert calibration_error(np.ones(5), np.ones(5)) == 0.0


def test_finetune_writes_a_timm_folder_with_measured_accuracy(labeler, data):
    out, result = labeler
    assert (out / "model.safetensors").is_file() and (out / "training" / "summary.json").is_file()
    assert not (out / ".export").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["label_names"] == [f"c{i}" for i in range(10)] and config["num_classes"] == 10
    assert config["pretrained_cfg"]["input_size"] == [3, 16, 16]
    assert config["pretrained_cfg"]["mean"] == [0.5] * 3 and config["pretrained_cfg"]["crop_pct"] == 1.0
    assert config["label_accuracy_on"] == "data/test (60 images)"
    # the exported folder, loaded back, scores exactly what the trainer measured on the same test split
    final = result["summary"]["final"]
    assert config["label_accuracy"] == pytest.approx(1 - final["test/error"], abs=1e-9)
    assert config["label_accuracy"] > 0.5  # learned something from 30 steps (chance: 0.1)
    assert config["finetune"]["mixup_alpha"] == 0.1 and config["finetune"]["n"] == 200


def test_finetuned_folder_is_a_cifar5m_labeler(labeler):
    from cifar5m.label import Labeler, create_labeler_model, read_labeler_info

    out, _ = labeler
    info = read_labeler_info(f"local-dir:{out}", None)
    assert info.num_classes == 10 and info.label_names == tuple(f"c{i}" for i in range(10))
    assert info.accuracy_note.endswith("on data/test (60 images)")
    label = Labeler(create_labeler_model(info, 10), "cpu")
    images = torch.from_numpy(np.stack([sample_image(i, "test", 8, 3) for i in range(60)]))
    predicted = label(images).argmax(1).numpy()
    truth = np.array([label_of(i, "test") for i in range(60)])
    config = json.loads((out / "config.json").read_text())
    assert (predicted == truth).mean() == pytest.approx(config["label_accuracy"])


def test_eval_command_reports_and_records(labeler, data, capsys):
    out, _ = labeler
    config = json.loads((out / "config.json").read_text())
    assert (
        main(["eval", "--model", f"local-dir:{out}", "--data", str(data), "--device", "cpu", "--json", "--limit", "30"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 30 and set(result["per_class"]) == {f"c{i}" for i in range(10)}
    assert 0 <= result["ece"] <= 1
    per_class = [v for v in result["per_class"].values() if v is not None]
    counts = np.bincount([label_of(i, "test") for i in range(30)], minlength=10)
    weighted = sum(a * counts[int(k[1:])] for k, a in result["per_class"].items() if a is not None) / 30
    assert per_class and result["accuracy"] == pytest.approx(weighted)
    assert (
        main(
            ["eval", "--model", f"local-dir:{out}", "--data", str(data), "--device", "cpu", "--record", "--limit", "30"]
        )
        == 0
    )
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["label_accuracy_on"] == "data/test (30 images)"
    assert recorded["label_accuracy"] == pytest.approx(result["accuracy"])
    (out / "config.json").write_text(json.dumps(config))  # leave the shared folder as the fine-tune wrote it


def test_eval_refuses_a_model_with_other_classes(backbone, data, capsys):
    assert main(["eval", "--model", f"local-dir:{backbone}", "--data", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "10 classes" in err and "7 outputs" in err and "Traceback" not in err


def test_finetune_refuses_a_folder_holding_another_model(backbone, data, tmp_path, capsys):
    before = (backbone / "config.json").read_bytes()
    assert (
        main(
            [
                "finetune",
                "--data",
                str(data),
                "--model",
                f"timm:local-dir:{backbone}",
                "--preset",
                "bit-hyperrule",
                "--image-size",
                "16",
                "--resize-size",
                "20",
                "--out",
                str(backbone),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "not written by `train finetune`" in capsys.readouterr().err
    assert (backbone / "config.json").read_bytes() == before
    assert main(["finetune", "--data", str(data), "--n", "5", "--out", str(tmp_path / "x")]) == 2
    assert "--n=5: finetune trains on the whole train split" in capsys.readouterr().err


def test_finetune_dry_run_sets_n_to_the_train_split(data, capsys):
    assert main(["finetune", "--data", str(data), "--preset", "bit-hyperrule", "--batch-size", "128", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["n"] == 200 and cfg["mode"] == "real" and cfg["lr"] == pytest.approx(0.00075)
    assert cfg["out_dir"] == "out/labeler"


def test_finetune_image_size_defaults_to_the_datas_size(data, capsys):
    assert main(["finetune", "--data", str(data), "--model", "timm:resnet18", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["image_size"] == 8
    assert main(["finetune", "--data", str(data), "--model", "timm:resnet18", "--image-size", "12", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["image_size"] == 12


def test_finetune_without_image_size_on_mixed_sizes_is_one_line(tmp_path, capsys):
    from train_fixtures import build_jpeg_dataset

    jpeg = build_jpeg_dataset(tmp_path / "jpeg")
    assert main(["finetune", "--data", str(jpeg), "--model", "timm:resnet18", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().endswith("images have no one square size (they differ); pass it (BiT: 128)")


def test_resize_crop_flip_needs_both_sizes(data, tmp_path):
    from train.core.config import validate

    with pytest.raises(TrainError, match="resize-size"):
        validate(
            apply_preset("bit-hyperrule", {"data": str(data), "out_dir": str(tmp_path), "n": 1, "resize_size": 100})
        )


def test_eval_of_a_model_whose_label_names_are_not_names_is_one_line(labeler, data, tmp_path, capsys):
    out, _ = labeler
    folder = tmp_path / "edited"
    shutil.copytree(out, folder, ignore=shutil.ignore_patterns("training"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "label_names": 5}))
    assert main(["eval", "--model", f"local-dir:{folder}", "--data", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the model's label_names is 5, not a list of class names") and "\n" not in err
