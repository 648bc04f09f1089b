"""The labeler: specs, class names, head checks, preprocessing to the model's own input size and channels."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from model_fixtures import make_tiny_labeler

from cifar5m.errors import Cifar5mError
from cifar5m.label import Labeler, check_head, create_labeler_model, read_labeler_info


def _load(spec, checkpoint=None, classes=10) -> Labeler:
    info = read_labeler_info(spec, checkpoint)
    return Labeler(create_labeler_model(info, classes), "cpu")


def test_local_dir_labeler_reads_its_config(tiny_labeler, tiny_digits_labeler):
    info = read_labeler_info(f"local-dir:{tiny_labeler}", None)
    assert info.num_classes == 10 and info.label_names is None and info.accuracy_note is None
    digits = read_labeler_info(f"local-dir:{tiny_digits_labeler}", None)
    assert digits.label_names == tuple(str(d) for d in range(10))


def test_recorded_accuracy_reaches_the_card_note(tmp_path):
    folder = make_tiny_labeler(tmp_path / "lab", label_accuracy=0.985, label_accuracy_on="CIFAR-10 test")
    assert read_labeler_info(f"local-dir:{folder}", None).accuracy_note == "98.50% on CIFAR-10 test"


def test_preprocessing_resizes_and_adapts_channels(tiny_labeler, tiny_digits_labeler):
    rgb = _load(f"local-dir:{tiny_labeler}")  # 3x24x24 input
    grey = _load(f"local-dir:{tiny_digits_labeler}")  # 1x16x16 input
    digits = torch.randint(0, 256, (5, 8, 8, 1), dtype=torch.uint8)
    cifar = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    assert rgb.preprocess(digits).shape == (5, 3, 24, 24)
    assert rgb.preprocess(cifar).shape == (5, 3, 24, 24)
    assert grey.preprocess(cifar).shape == (5, 1, 16, 16)
    # grey -> RGB repeats the channel; mean/std 0.5 map 0 -> -1 and 255 -> +1
    x = rgb.preprocess(torch.zeros(1, 24, 24, 1, dtype=torch.uint8) + 255)
    assert torch.allclose(x, torch.ones_like(x))
    probs = rgb(cifar)
    assert probs.shape == (5, 10) and torch.allclose(probs.sum(1), torch.ones(5))


def test_plain_timm_name_with_checkpoint_equals_local_dir(tiny_labeler):
    a = _load(f"local-dir:{tiny_labeler}")
    b = _load("test_resnet", str(tiny_labeler / "model.safetensors"))
    x = torch.randn(3, 3, 24, 24)
    with torch.no_grad():
        assert torch.allclose(a.model(x), b.model(x))


@pytest.mark.parametrize(
    "spec,checkpoint,message",
    [
        ("local-dir:/no/such/folder", None, "config.json not found"),
        ("resnet18", None, "needs --labeler-checkpoint"),
        ("resnet18", "/no/such/file.pth", "no such file"),
        ("ORG/NAME", None, "write hf-hub:ORG/NAME"),
    ],
)
def test_bad_labeler_specs_are_refused(spec, checkpoint, message):
    with pytest.raises(Cifar5mError, match=message):
        read_labeler_info(spec, checkpoint)


def test_checkpoint_of_another_head_is_refused(tiny_labeler):
    info = read_labeler_info("test_resnet", str(tiny_labeler / "model.safetensors"))
    with pytest.raises(Cifar5mError, match="cannot load"):
        create_labeler_model(info, 5)


def test_head_must_match_the_class_names(tmp_path):
    folder = make_tiny_labeler(tmp_path / "lab11", num_classes=11)
    info = read_labeler_info(f"local-dir:{folder}", None)
    with pytest.raises(Cifar5mError, match="its head has 11 outputs but the dataset has 10 classes"):
        check_head(info, tuple("abcdefghij"), "x")
    check_head(info, tuple("abcdefghijk"), "x")  # 11 names for 11 outputs: accepted
    model = create_labeler_model(info, 11)
    probs = Labeler(model, "cpu")(torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8))
    assert probs.shape == (2, 11) and torch.allclose(probs.sum(1), torch.ones(2))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("label_accuracy", "abc", "config.json's label_accuracy is 'abc', not a number in [0, 1]"),
        ("label_accuracy", 98.5, "config.json's label_accuracy is 98.5, not a number in [0, 1]"),
        ("label_names", 5, "config.json's label_names is 5, not a list of class names"),
        ("pretrained_cfg", [], "config.json's pretrained_cfg is [], not an object of settings"),
        ("num_classes", "10", "config.json's num_classes is '10', not an integer >= 1"),
        ("label_accuracy_on", 3, "config.json's label_accuracy_on is 3, not a text"),
    ],
)
def test_a_labeler_config_field_of_the_wrong_type_is_one_line(tiny_labeler, tmp_path, field, value, message):
    config = json.loads((tiny_labeler / "config.json").read_text())
    config.update(
        {field: value, "label_accuracy": config.get("label_accuracy", 0.9)}
        if field == "label_accuracy_on"
        else {field: value}
    )
    folder = shutil.copytree(tiny_labeler, tmp_path / "labeler")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(Cifar5mError, match="re-save the labeler") as err:
        read_labeler_info(f"local-dir:{folder}", None)
    assert message in str(err.value) and "\n" not in str(err.value)
