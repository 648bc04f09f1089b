"""Error, soft-error and loss of a model on a resident evaluation set (the paper code's definitions:
github.com/preetum/deep-bootstrap-code `inftrain/train.py`).

    metrics_from_logits(logits, labels)  # {"error", "soft_error", "loss"} for hand-made logits
    evaluate(model, eval_set, ...)        # the same over a uint8 set held on the device, in big batches

error = mean(argmax != label); soft_error = 1 - mean p(label) with p = softmax(logits), as in the paper
code's `test_all`; loss = mean cross-entropy (no label smoothing); count = the number of examples. Under DDP each rank holds its share
of a set and the per-rank sums are added, so every rank gets the metrics of the whole set.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from train.core import ddp

NAMES = ("error", "soft_error", "loss")


def example_values(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(3, B) per example: [wrong, 1 - p_true, cross-entropy], in float32."""
    logits = logits.float()
    logp = F.log_softmax(logits, dim=1)
    logp_true = logp.gather(1, labels[:, None]).squeeze(1)
    wrong = (logits.argmax(1) != labels).float()
    return torch.stack([wrong, 1.0 - logp_true.exp(), -logp_true])


def metric_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sums over the batch of [wrong, 1 - p_true, cross-entropy], in float64 to add many batches exactly."""
    return example_values(logits, labels).double().sum(dim=1)


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    sums = metric_sums(logits, labels)
    return {name: float(v) / len(labels) for name, v in zip(NAMES, sums.tolist())}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    view,
    batch_size: int,
    dist: ddp.Dist,
    autocast: contextlib.AbstractContextManager | None = None,
    outputs: list | None = None,
) -> dict[str, float | None]:
    """Metrics of `model` (in eval mode) on uint8 NHWC `images` (this rank's share), summed over ranks.

    `view` maps a uint8 NHWC batch to the model's float input. `outputs`: a list that receives each
    batch's (3, B) per-example values (`example_values`, on the CPU), for callers that keep them.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=labels.device)
    for start in range(0, len(labels), batch_size):
        x = view(images[start : start + batch_size])
        y = labels[start : start + batch_size]
        with autocast or contextlib.nullcontext():
            logits = model(x)
        values = example_values(logits, y)
        sums[:3] += values.double().sum(dim=1)
        sums[3] += len(y)
        if outputs is not None:
            outputs.append(values.cpu())
    model.train(was_training)
    total = ddp.all_reduce_sum(sums, dist).tolist()
    count = total[3]
    # None (JSON null) for an empty set, and for a diverged model's NaN/inf (JSON has no NaN).
    result = {name: (v / count if count and math.isfinite(v) else None) for name, v in zip(NAMES, total[:3])}
    return {**result, "count": int(count)}  # the set's size: reports derive its sampling error from it
