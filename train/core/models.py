"""Models under the paper code's names, for any input size and 1 or 3 channels, plus any timm model.

    build_model(cfg, num_classes=10, in_chans=3, image_size=32)   # cfg.model: a name below or timm:NAME
    known_models()                                                # the built-in names
    zero_head(model)                                              # BiT's zero-initialised classifier

Built in (common/models32.py and common/models/small/ of the paper code): `preact-resnet18` (PreAct
ResNet-18, widths k, 2k, 4k, 8k with k = --width, 64 in the paper), `mcnn` (the 4-layer CNN, width 64),
`vgg11-bn` (with the paper code's init), `mlp` (Linear + BatchNorm + ReLU per width in --mlp-widths), and
`resnet50` (torchvision's, as inftrain/train_imgnet.py builds it). `timm:NAME` builds a timm model with the
dataset's channels and classes (ViTs get the image size); `--pretrained` loads its weights. Inputs arrive in
[-1, 1]; with --input-range unit the model first maps them to [0, 1] (`unit_inputs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from train.errors import TrainError

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        return fn

    return wrap


def known_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(cfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """The model named by cfg.model, for inputs of shape (in_chans, image_size, image_size)."""
    if cfg.model.startswith("timm:"):
        model = _timm_model(cfg.model[5:], cfg.pretrained, num_classes, in_chans, image_size)
    elif cfg.model in _REGISTRY:
        model = _REGISTRY[cfg.model](cfg, num_classes, in_chans, image_size)
    else:
        raise TrainError(
            f"--model={cfg.model}: unknown model; known: {', '.join(known_models())}, or timm:NAME for any timm model"
        )
    if cfg.input_range == "unit":
        unit_inputs(model)
    return guard_cpu_layout(model)


def _to_unit_range(module: nn.Module, args: tuple) -> tuple:
    return (args[0] * 0.5 + 0.5, *args[1:])


def unit_inputs(model: nn.Module) -> nn.Module:
    """Map the model's [-1, 1] inputs to [0, 1] before its first layer: the ToTensor inputs of
    inftrain/train_imgnet.py. A hook, not a layer: the weights and state_dict stay the plain model's."""
    model.register_forward_pre_hook(_to_unit_range)
    return model


def _contiguous_on_cpu(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) and a.device.type == "cpu" else a for a in args)


def _hits_onednn_heap_bug(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride != (1, 1)
        and module.in_channels // module.groups <= 4
    )


def guard_cpu_layout(model: nn.Module) -> nn.Module:
    """Feed NCHW-contiguous inputs on the CPU to the convolutions that hit a torch bug (idempotent).

    torch 2.14.1's oneDNN backward of a 1x1 strided convolution on a channels_last input with <= 4
    channels corrupts the heap on CPUs without AVX-512 ("double free or corruption", or a hang; reproduced
    with ONEDNN_MAX_CPU_ISA=AVX2). Our batch transforms yield channels_last views and a convolution keeps
    its input's layout, so such a layer (e.g. a PreAct ResNet shortcut at --width <= 4) gets a contiguous
    copy; every other layer keeps its layout, and a GPU is untouched.
    """
    for module in model.modules():
        if _hits_onednn_heap_bug(module) and not getattr(module, "_cpu_layout_guarded", False):
            module.register_forward_pre_hook(_contiguous_on_cpu)
            module._cpu_layout_guarded = True  # type: ignore[assignment]  # nn.Module types attributes as tensors
    return model


def zero_head(model: nn.Module) -> None:
    """Zero the classifier's weights and bias (BiT fine-tuning starts from a zero head: Kolesnikov et al.
    2020, big_transfer `bit_pytorch/models.py` zero_head): timm's get_classifier(), else the last Linear."""
    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if get_classifier else None
    if not isinstance(head, (nn.Linear, nn.Conv2d)):
        head = next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)
    if head is None:
        raise TrainError(f"--zero-init-head: {type(model).__name__} has no linear classifier to zero; drop the flag")
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice, with the shortcut taken after the first BN-ReLU when it must project."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_planes, planes, 1, stride, bias=False) if stride != 1 or in_planes != planes else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """The paper code's preresnet18: no final BN-ReLU, global average pool (4x4 at 32 px), linear head."""

    def __init__(self, width: int, num_classes: int, in_chans: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        layers, in_planes = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2**i
            layers += [PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(x))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("preact-resnet18")
def _preact_resnet18(cfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    return PreActResNet18(cfg.width, num_classes, in_chans)


@register("mcnn")
def _mcnn(cfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    # The paper code's mcnn: 4 conv-BN-ReLU layers of width c, 2c, 4c, 8c, max-pool after layers 1 and 2,
    # global max-pool, linear head.
    c = cfg.width
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(((in_chans, c), (c, 2 * c), (2 * c, 4 * c), (4 * c, 8 * c))):
        layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if i in (1, 2):
            layers.append(nn.MaxPool2d(2) if image_size >= 2**i else nn.Identity())
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * c, num_classes))


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@register("vgg11-bn")
def _vgg11_bn(cfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    # Channels scale with --width (64 = the standard VGG-11); a max-pool that would shrink the map below
    # 1x1 is dropped, so small inputs (8x8 digits) work.
    layers: list[nn.Module] = []
    cin, size = in_chans, image_size
    for item in _VGG11:
        if item == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        cout = item * cfg.width // 64
        layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    _vgg_init(model)
    return model


def _vgg_init(model: nn.Module) -> None:
    # The paper code's VGG._initialize_weights (common/models/small/vgg.py): conv N(0, sqrt(2 / (k^2 out))),
    # linear N(0, 0.01), zero biases, BatchNorm weight 1 and bias 0.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.01)
                m.bias.zero_()


@register("resnet50")
def _resnet50(cfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    # train_imgnet.py's default: tvmodels.resnet50(num_classes=...), untrained, torchvision's init (no
    # zero-initialised last BN per block, unlike timm's resnet50). A grey dataset gets a 1-channel stem.
    from torchvision.models import resnet50  # deferred: only this model needs torchvision's models

    model = resnet50(weights=None, num_classes=num_classes)
    if in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


@register("mlp")
def _mlp(cfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    indim = in_chans * image_size * image_size
    for w in cfg.mlp_widths:
        layers += [nn.Linear(indim, w), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
        indim = w
    return nn.Sequential(*layers, nn.Linear(indim, num_classes))


def _timm_model(name: str, pretrained: bool, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    import timm  # deferred: heavy (seconds); only timm:NAME models need it

    if not timm.is_model(name) and not name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise TrainError(
            f"--model=timm:{name}: timm has no such model; list them with "
            f"python -c \"import timm; print(timm.list_models('*{name[:6]}*'))\""
        )
    kwargs = dict(pretrained=pretrained, num_classes=num_classes, in_chans=in_chans)
    try:
        try:
            # ViT-like models fix their position embeddings to an image size: give them ours.
            model = timm.create_model(name, img_size=image_size, **kwargs)
        except TypeError:
            model = timm.create_model(name, **kwargs)
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_chans, image_size, image_size))
    except TrainError:
        raise
    except Exception as exc:  # timm and the Hub raise many types; all mean "cannot use this model here"
        raise TrainError(
            f"--model=timm:{name}: cannot build it for {in_chans}x{image_size}x{image_size} "
            f"inputs with {num_classes} classes ({type(exc).__name__}: {exc}); pick another "
            "model or set --image-size"
        ) from exc
    return model.train()
