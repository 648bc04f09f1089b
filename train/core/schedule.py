"""When to evaluate and what learning rate to use at each step: pure functions of the step number.

    parse_eval_schedule("paper", 39000)    # the paper code's: after steps 1, 5, 9, ... (every 4 < 1024, 8 < 2048, then 64)
    parse_eval_schedule("after:32", 781)   # after steps 1, 33, 65, ...: train_imgnet.py's `--k 32`
    parse_eval_schedule("log:64", 39000)   # sorted steps to evaluate at (always 0 and the last step)
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
    return {min(steps, max(1, round(ratio**i))) for i in range(points)}


def _paper_steps(steps: int) -> list[range]:
    # inftrain/train.py (github.com/preetum/deep-bootstrap-code) evaluates at batch i (0-based) when
    # i % 64 == 0, or i % 4 == 0 below 1024, or i % 8 == 0 below 2048, after that batch's
    # optimizer.step(): after i + 1 steps, so steps 1, 5, 9, ..., 1021, 1025, 1033, ..., 2041, 2049, 2113, ...
    return [range(1, min(steps, 1024) + 1, 4), range(1, min(steps, 2048) + 1, 8), range(1, steps + 1, 64)]


# More evaluations than this is a typo (every:1 over 2e9 steps), refused before any work: 39,000 steps
# evaluated at every step is 39,001, the paper schedule over them 964.
MAX_EVALUATIONS = 100_000


def _part_steps(part: str, steps: int) -> list:
    """The part's steps as lazy ranges (or a set), so their count is known before they are built."""
    kind, _, arg = part.partition(":")
    try:
        if kind == "paper" and not arg:
            return _paper_steps(steps)
        if kind == "log" and 1 <= int(arg) <= MAX_EVALUATIONS:
            return [_log_steps(int(arg), steps)]
        if kind == "every" and int(arg) >= 1:
            return [range(0, steps + 1, int(arg))]
        if kind == "after" and int(arg) >= 1:
            # train_imgnet.py's `--k`: batch i is evaluated when i % k == 0, after its optimizer.step().
            return [range(1, steps + 1, int(arg))]
        if kind == "steps":
            chosen = {int(x) for x in arg.split(",") if x.strip()}
            if chosen and all(0 <= s <= steps for s in chosen):
                return [chosen]
    except ValueError:
        pass
    raise TrainError(
        f"--eval-schedule part {part!r}: use paper, log:POINTS (at most {MAX_EVALUATIONS:,}), "
        f"every:STEPS, after:STEPS or steps:A,B,C (steps within 0..{steps}), joined by '+', "
        "e.g. log:64+every:1000"
    )


def parse_eval_schedule(spec: str, steps: int) -> list[int]:
    """Sorted evaluation steps (step s = after s optimizer steps), always including 0 and `steps`."""
    pieces = [piece for part in spec.split("+") for piece in _part_steps(part.strip(), steps)]
    count = sum(len(piece) for piece in pieces)
    if count > MAX_EVALUATIONS:
        raise TrainError(
            f"--eval-schedule {spec} over {steps:,} steps: up to {count:,} evaluations, more than "
            f"{MAX_EVALUATIONS:,}; use a sparser schedule, e.g. log:64 or every:{steps // 1000 or 1}"
        )
    chosen = {0, steps}
    for piece in pieces:
        chosen.update(piece)
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
