"""K runs of one architecture as ONE model: grouped convolutions, BatchNorm over the K groups, batched heads.

    packed = pack_model([model_0, ..., model_K-1])      # same architecture, each with its own weights
    logits = packed(x)                                   # x: (B, K*C, H, W), run k's batch in channels k*C..
    per_run = split_logits(logits, K)                    # (K, B, classes)
    unpack_into(packed, models)                          # copy each run's slice back into its own model
    sgd = PackedSGD(packed, K, momentum=0.9, weight_decay=5e-4); sgd.step(lr)   # lr: one per run

Why grouped convolutions and not `torch.func.stack_module_state` + `vmap(functional_call)`: vmap lowers a
batched conv2d to a grouped convolution anyway, and measured slower on CPU for compute-bound runs
(bench/bench_pack.py); BatchNorm's in-place running-stat update fails under vmap unless the buffers are
stacked too (docs.pytorch.org/docs/stable/func.batch_norm.html). A packed model stays an ordinary
nn.Module: DDP, torch.compile, channels_last, autocast and state_dict work as for one run.

The layout makes the K runs independent exactly: a grouped conv (groups=K) sees only run k's channels;
BatchNorm normalises each channel over the batch, so over K x C channels it is per run; ReLU, pooling and
flatten act per channel; a Linear becomes a batched matmul over K. Every packed tensor is the K runs'
tensors concatenated along dim 0 (conv out-channels, BN channels, linear rows), so packing, unpacking,
momentum buffers and a per-run learning rate are all slices along dim 0.
"""

from __future__ import annotations

import copy
import functools
import operator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from train.core.models import guard_cpu_layout
from train.errors import TrainError

# Leaf modules that act per channel (or have no parameters): kept as they are in the packed model.
_CHANNELWISE = (
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
)


class PackedLinear(nn.Module):
    """K Linear layers as one batched matmul: (B, K*in) -> (B, K*out); weight rows = the K weights stacked."""

    def __init__(self, k: int, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k * out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        w = self.weight.view(self.k, self.out_features, self.in_features)
        # (K, B, in) @ (K, in, out): one bmm for all K heads.
        out = torch.bmm(x.view(b, self.k, self.in_features).transpose(0, 1), w.transpose(1, 2))
        if self.bias is not None:
            out = out + self.bias.view(self.k, 1, self.out_features)
        return out.transpose(0, 1).reshape(b, self.k * self.out_features)


class PackedConv2d(nn.Conv2d):
    """K convolutions as one grouped convolution (groups = K x the original groups).

    On CPU it runs the K slices as K ordinary convolutions instead: oneDNN's grouped kernels measured
    1.5-2x slower than the same convolutions one by one there (bench/bench_pack.py, bench/RESULTS.md).
    """

    def __init__(self, k: int, conv: nn.Conv2d):
        # nn.Conv2d stores its sizes as tuple[int, ...]; its __init__ is typed for pairs: pass them through.
        sizes: dict[str, Any] = dict(
            kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding, dilation=conv.dilation
        )
        super().__init__(
            k * conv.in_channels, k * conv.out_channels, groups=k * conv.groups, bias=conv.bias is not None, **sizes
        )
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        biases = self.bias.chunk(self.k) if self.bias is not None else [None] * self.k
        return torch.cat(
            [
                F.conv2d(xi, wi, bi, self.stride, self.padding, self.dilation, self.groups // self.k)
                for xi, wi, bi in zip(x.chunk(self.k, 1), self.weight.chunk(self.k), biases)
            ],
            1,
        )


def _packed_leaf(module: nn.Module, k: int, where: str) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise TrainError(f"{where}: cannot pack a convolution with padding_mode={module.padding_mode}")
        return PackedConv2d(k, module)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return type(module)(
            k * module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
    if isinstance(module, nn.Linear):
        return PackedLinear(k, module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, _CHANNELWISE):
        return copy.deepcopy(module)
    raise TrainError(f"{where}: cannot pack a {type(module).__name__} layer; train this model with --pack 1")


def _packed_structure(module: nn.Module, k: int, where: str = "model") -> nn.Module:
    """A copy of `module` with every leaf widened for K runs (containers and their forward kept)."""
    children = dict(module.named_children())
    if not children:
        return _packed_leaf(module, k, where)
    if type(module).forward is nn.Module.forward:
        raise TrainError(f"{where}: {type(module).__name__} has no forward; train this model with --pack 1")
    packed = copy.copy(module)  # same class and forward, fresh children below
    packed._modules = {name: _packed_structure(child, k, f"{where}.{name}") for name, child in children.items()}
    packed._parameters, packed._buffers = {}, {}
    if [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
        raise TrainError(f"{where}: {type(module).__name__} holds its own tensors; train this model with --pack 1")
    return packed


def pack_model(models: list[nn.Module]) -> nn.Module:
    """One model that computes all of `models` (one architecture) at once, holding copies of their weights."""
    packed = _packed_structure(models[0], len(models))
    first = next(models[0].parameters())
    packed.to(device=first.device, dtype=first.dtype)  # built on the CPU in float32: follow the runs' models
    pack_into(models, packed)
    return guard_cpu_layout(packed.train(models[0].training))


def _pairs(models: list[nn.Module], packed: nn.Module):
    """(packed tensor, [the K runs' tensors]) for every parameter and buffer, by name."""
    states = [dict(m.named_parameters()) | dict(m.named_buffers()) for m in models]
    for name, tensor in list(packed.named_parameters()) + list(packed.named_buffers()):
        yield tensor, [s[name] for s in states]


@torch.no_grad()
def pack_into(models: list[nn.Module], packed: nn.Module) -> None:
    for tensor, parts in _pairs(models, packed):
        if tensor.dim() == 0:  # num_batches_tracked: the runs of a pack have taken the same steps
            tensor.copy_(parts[0])
        else:
            tensor.copy_(torch.cat([p.reshape(-1, *tensor.shape[1:]) for p in parts]))


@torch.no_grad()
def unpack_into(packed: nn.Module, models: list[nn.Module]) -> None:
    for tensor, parts in _pairs(models, packed):
        chunks = [tensor] * len(parts) if tensor.dim() == 0 else tensor.chunk(len(parts))
        for part, chunk in zip(parts, chunks):
            part.copy_(chunk.reshape(part.shape))


def split_logits(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K*classes) -> (K, B, classes)."""
    return logits.view(logits.shape[0], k, -1).transpose(0, 1)


def packed_input(batches: list[torch.Tensor]) -> torch.Tensor:
    """The K runs' (B, C, H, W) batches as one (B, K*C, H, W) input (or (B, K*F) for flat inputs)."""
    return torch.cat(batches, dim=1)


def packed_loss(logits: torch.Tensor, labels: list[torch.Tensor], label_smoothing: float) -> torch.Tensor:
    """Sum over runs of each run's mean cross-entropy: run k's gradient is that of its own loss alone."""
    per_run = split_logits(logits.float(), len(labels))
    losses = [F.cross_entropy(z, y, label_smoothing=label_smoothing) for z, y in zip(per_run, labels)]
    return functools.reduce(operator.add, losses)


class PackedSGD:
    """torch.optim.SGD's update (momentum, dampening 0, weight decay, Nesterov) with one lr per run.

    torch.optim.SGD takes one scalar lr per param group, and a packed tensor holds K runs; so the same
    update is written with an lr per row of each packed tensor (pytorch.org/docs/stable/generated/torch.optim.SGD):
    g += wd * p; buf = g on the first step, else momentum * buf + g; g = g + momentum * buf (Nesterov) or buf;
    p -= lr * g.
    """

    def __init__(self, packed: nn.Module, k: int, momentum: float, weight_decay: float, nesterov: bool = False):
        self.params = list(packed.parameters())
        self.k, self.momentum, self.weight_decay, self.nesterov = k, momentum, weight_decay, nesterov
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update; `lr` holds the K runs' learning rates (float32, on the parameters' device)."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = g.clone()
                else:
                    self.buffers[i].mul_(self.momentum).add_(g)
                g = g.add(self.buffers[i], alpha=self.momentum) if self.nesterov else self.buffers[i]
            # Row r of a packed tensor belongs to run r // (rows per run); no view(K, -1), which
            # channels_last strides do not allow.
            p.sub_(g * self._per_row(lr, p))

    def _per_row(self, lr: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return lr.repeat_interleave(p.shape[0] // self.k).view(-1, *(1,) * (p.dim() - 1))

    def load_run_buffers(self, buffers: list[list[torch.Tensor] | None]) -> None:
        """Set momentum from the K runs' buffers (each run: one per parameter, in order; None = no step yet)."""
        if any(b is None for b in buffers):
            self.buffers = [None] * len(self.params)
            return
        self.buffers = [
            torch.cat([run[i].reshape(-1, *p.shape[1:]) for run in buffers]).clone() for i, p in enumerate(self.params)
        ]

    def run_buffers(self, run: int) -> list[torch.Tensor] | None:
        """Run `run`'s momentum buffers, one per parameter (views into the packed ones)."""
        if any(b is None for b in self.buffers) or not self.buffers:
            return None
        return [b.chunk(self.k)[run] for b in self.buffers]
