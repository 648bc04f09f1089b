"""Metric definitions on hand-made logits, GPU-style augmentation on index-coded images, and the models."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import pytest
import torch

from train.core import ddp
from train.core.augment import EvalView, TrainAugment, fit_size, normalise
from train.core.config import RunConfig
from train.core.metrics import evaluate, metrics_from_logits
from train.core.models import build_model, known_models
from train.errors import TrainError


def test_metrics_on_hand_made_logits():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0], [0.0, math.log(4.0)]])
    labels = torch.tensor([0, 1, 0])
    # p_true: 3/4, 1/2 (tie: argmax picks class 0, wrong), 1/5
    m = metrics_from_logits(logits, labels)
    assert m["error"] == pytest.approx(2 / 3)
    assert m["soft_error"] == pytest.approx(1 - (0.75 + 0.5 + 0.2) / 3)
    assert m["loss"] == pytest.approx(-(math.log(0.75) + math.log(0.5) + math.log(0.2)) / 3)


def test_evaluate_batches_add_up_and_empty_set_is_null():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = torch.randint(0, 256, (10, 2, 2, 1), dtype=torch.uint8)
    labels = torch.randint(0, 3, (10,))
    view = EvalView(2)
    whole = metrics_from_logits(model(view(images)), labels)
    batched = evaluate(model, images, labels, view, batch_size=3, dist=ddp.Dist())
    assert batched == pytest.approx({**whole, "count": 10})
    empty = evaluate(model, images[:0], labels[:0], view, batch_size=3, dist=ddp.Dist())
    assert empty == {"error": None, "soft_error": None, "loss": None, "count": 0}


def _coded(batch: int, size: int) -> torch.Tensor:
    # pixel value = 1 + row * size + col (< 256), so every output pixel names its source position
    grid = 1 + torch.arange(size * size, dtype=torch.uint8).reshape(size, size)
    return grid[None, :, :, None].expand(batch, size, size, 1).contiguous()


def test_crop_flip_takes_shifted_windows_of_the_zero_padded_image():
    size, pad = 6, 2
    x = _coded(64, size)
    out = TrainAugment("crop-flip", pad, size)(x, torch.Generator().manual_seed(0))
    assert out.shape == (64, 1, size, size)
    values = ((out[:, 0] + 1) * 127.5).round().long()
    padded = torch.nn.functional.pad(x[0, :, :, 0].long(), (pad, pad, pad, pad))
    seen_flip = seen_shift = False
    for img in values:
        ok = False
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                window = padded[dy : dy + size, dx : dx + size]
                if torch.equal(img, window) or torch.equal(img, window.flip(1)):
                    ok = True
                    seen_flip |= torch.equal(img, window.flip(1)) and not torch.equal(img, window)
                    seen_shift |= (dy, dx) != (pad, pad)
        assert ok
    assert seen_flip and seen_shift


def test_crop_shifts_within_the_padding_and_never_mirrors():
    # A digit mirrored is another digit (or none): `crop` must only shift.
    size, pad = 6, 1
    x = _coded(200, size)
    out = TrainAugment("crop", pad, size)(x, torch.Generator().manual_seed(0))
    values = ((out[:, 0] + 1) * 127.5).round().long()
    padded = torch.nn.functional.pad(x[0, :, :, 0].long(), (pad, pad, pad, pad))
    windows = {(dy, dx): padded[dy : dy + size, dx : dx + size] for dy in range(3) for dx in range(3)}
    offsets = [next((o for o, w in windows.items() if torch.equal(img, w)), None) for img in values]
    assert None not in offsets  # every image is an unmirrored window of the zero-padded original
    assert set(offsets) == set(windows)  # and all nine 1-px shifts occur in 200 draws


def test_augment_is_reproducible_from_the_generator_and_views_normalise():
    x = _coded(8, 8)
    aug = TrainAugment("rrc-flip", 0, 5)
    a = aug(x, torch.Generator().manual_seed(3))
    assert a.shape == (8, 1, 5, 5) and torch.equal(a, aug(x, torch.Generator().manual_seed(3)))
    assert normalise(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)).flatten().tolist() == [-1.0, 1.0]
    assert fit_size(torch.zeros(1, 3, 256, 256), 224).shape[-1] == 224  # centre crop
    assert fit_size(torch.zeros(1, 3, 8, 8), 32).shape[-1] == 32  # resize
    assert torch.equal(TrainAugment("none", 4, 8)(x, torch.Generator()), EvalView(8)(x))


@pytest.mark.parametrize("name", ["preact-resnet18", "mcnn", "vgg11-bn", "mlp"])
@pytest.mark.parametrize("chans, size", [(1, 8), (3, 32)])
def test_builtin_models_take_any_size_and_channels(name, chans, size):
    cfg = RunConfig(model=name, width=8, mlp_widths=(16, 8))
    model = build_model(cfg, num_classes=7, in_chans=chans, image_size=size)
    model.train()
    assert model(torch.zeros(2, chans, size, size)).shape == (2, 7)


def test_paper_widths():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # PreAct ResNet-18 at width 64 on CIFAR-10: ~11.2M parameters; mcnn width 64: ~1.5M
    assert 11.0e6 < count(build_model(RunConfig(), 10, 3, 32)) < 11.3e6
    assert 1.4e6 < count(build_model(RunConfig(model="mcnn"), 10, 3, 32)) < 1.6e6


def test_vgg11_bn_has_the_paper_codes_init():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="vgg11-bn"), 10, 3, 32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    # common/models/small/vgg.py: conv N(0, sqrt(2 / (3 * 3 * out))), linear N(0, 0.01), zero biases
    for conv in convs[2:]:  # >= 295K weights each: the sample sd is within 1% of the true one
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * conv.out_channels)), rel=0.02)
    assert all(conv.bias.abs().max() == 0 for conv in convs) and head.bias.abs().max() == 0
    assert head.weight.std().item() == pytest.approx(0.01, rel=0.1) and head.in_features == 512


def test_resnet50_is_torchvisions_without_zeroed_last_batchnorms():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="resnet50"), 2, 3, 64)
    assert 23.4e6 < sum(p.numel() for p in model.parameters()) < 23.6e6  # ResNet-50 with a 2-way head
    last_bns = [block.bn3.weight for layer in (model.layer1, model.layer4) for block in layer]
    assert all(bool((w == 1).all()) for w in last_bns)  # timm's resnet50 zeroes these
    grey = build_model(RunConfig(model="resnet50"), 2, 1, 32)
    assert grey.eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 2)


def test_unit_input_range_feeds_the_model_zero_to_one():
    torch.manual_seed(0)
    signed = build_model(RunConfig(model="mlp", mlp_widths=(8,)), 3, 1, 4).eval()
    torch.manual_seed(0)
    unit = build_model(RunConfig(model="mlp", mlp_widths=(8,), input_range="unit"), 3, 1, 4).eval()
    x = torch.rand(5, 1, 4, 4) * 2 - 1  # what normalise() gives: [-1, 1]
    torch.testing.assert_close(unit(x), signed((x + 1) / 2))
    assert unit.state_dict().keys() == signed.state_dict().keys()


def test_unknown_models_are_named():
    with pytest.raises(TrainError, match="known: " + ", ".join(known_models())):
        build_model(RunConfig(model="resnet9000"), 10, 3, 32)
    with pytest.raises(TrainError, match="timm has no such model"):
        build_model(RunConfig(model="timm:no_such_net_xyz"), 10, 3, 32)


def test_timm_models_get_channels_classes_and_size():
    model = build_model(RunConfig(model="timm:test_vit"), num_classes=4, in_chans=1, image_size=16)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 4)
    cnn = build_model(dataclasses.replace(RunConfig(), model="timm:test_resnet"), 3, 3, 8)
    assert cnn(torch.zeros(2, 3, 8, 8)).shape == (2, 3)


def test_cpu_layout_guard_survives_the_onednn_heap_bug():
    """A PreAct ResNet-18 at width 2 has 1x1 stride-2 shortcuts on 2-4 channels: torch 2.14.1's oneDNN
    backward of those on channels_last input corrupts the heap on CPUs without AVX-512. Forced onto that
    code path (ONEDNN_MAX_CPU_ISA=AVX2, as on an AMD EPYC without AVX-512), the built model still trains."""
    script = (
        "import torch\n"
        "from train.core.config import RunConfig\n"
        "from train.core.models import build_model\n"
        "model = build_model(RunConfig(model='preact-resnet18', width=2), 10, 3, 16)\n"
        "x = torch.randn(8, 16, 16, 3).permute(0, 3, 1, 2)  # the channels_last view our transforms yield\n"
        "for _ in range(5):\n"
        "    model(x).sum().backward()\n"
        "print('trained')\n"
    )
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "trained", done.stderr[-2000:]
