"""When to evaluate and what learning rate to use at each step: pure functions of the step number.

    parse_eval_schedule("log:64", 39000)   # sorted steps to evaluate at (always 0 and the last step)
    parse_eval_schedule("paper", 39000)    # the paper code's: every 4 steps < 1024, 8 < 2048, then 64
    parse_eval_schedule("log:64+every:1000", 39000)   # union of parts; also "steps:1,10,100"
    lr_at(cfg, step)                       # learning rate of optimizer step `step` (0-based)

Both depend only on the step, never on state, so a resumed run uses exactly the same values.
"""
from __future__ import annotations

import math

from train.errors import TrainError


def _log_steps(points: int, steps: int) -> set[int]:
    # Geometric spacing from 1 to `steps`: dense early, where the Real and Ideal curves move fastest.
    if points == 1:
        return {steps}
    ratio = steps ** (1.0 / (points - 1))
    return {min(steps, max(1, round(ratio ** i))) for i in range(points)}


def _paper_steps(steps: int) -> set[int]:
    # inftrain/train.py logs at batch i when i % 64 == 0, or i % 4 == 0 below 1024, or i % 8 == 0
    # below 2048 (github.com/preetum/deep-bootstrap-code); batch i is evaluated before its update, i.e.
    # after i steps.
    return {i for i in range(steps + 1) if i % 64 == 0 or (i < 1024 and i % 4 == 0) or (i < 2048 and i % 8 == 0)}


def _part_steps(part: str, steps: int) -> set[int]:
    kind, _, arg = part.partition(":")
    try:
        if kind == "paper" and not arg:
            return _paper_steps(steps)
        if kind == "log" and int(arg) >= 1:
            return _log_steps(int(arg), steps)
        if kind == "every" and int(arg) >= 1:
            return set(range(0, steps + 1, int(arg)))
        if kind == "steps":
            chosen = {int(x) for x in arg.split(",") if x.strip()}
            if chosen and all(0 <= s <= steps for s in chosen):
                return chosen
    except ValueError:
        pass
    raise TrainError(f"--eval-schedule part {part!r}: use log:POINTS, every:STEPS, paper or steps:A,B,C "
                     f"(steps within 0..{steps}), joined by '+', e.g. log:64+every:1000")


def parse_eval_schedule(spec: str, steps: int) -> list[int]:
    """Sorted evaluation steps (step s = after s optimizer steps), always including 0 and `steps`."""
    chosen = {0, steps}
    for part in spec.split("+"):
        chosen |= _part_steps(part.strip(), steps)
    return sorted(chosen)


def lr_at(cfg, step: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `cfg.steps`, from cfg's schedule settings."""
    every = cfg.lr_update_every_steps
    # The paper code's CosineAnnealingLR(T_max = steps // 390) stepped every 390 batches: u counts updates.
    updates = max(1, cfg.steps // every)
    u = min(step // every, updates)
    if cfg.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * u / updates))
    elif cfg.schedule == "step":
        factor = cfg.lr_gamma ** sum(step >= m * cfg.steps for m in cfg.lr_milestones)
    else:
        factor = 1.0
    if step < cfg.warmup_steps:
        factor *= (step + 1) / cfg.warmup_steps
    return cfg.lr * factor
