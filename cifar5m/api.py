"""The tool's entry call, the one `cifar5m generate` and the demo both make.

    from cifar5m import GenerateConfig, generate_dataset
    result = generate_dataset(GenerateConfig(out_dir="out/small", labeler="local-dir:out/labeler", train=1000))

`generate_dataset` = `plan_generation` (check everything, load no weights) then `run_plan` (the runner
the config asks for: Ray, local processes, or this process). Callers that print the plan in between, as
the CLI does, call the two halves.
"""

from __future__ import annotations

from cifar5m.config import GenerateConfig
from cifar5m.errors import Cifar5mError
from cifar5m.generate import Progress, RunPlan, RunResult, plan_run
from cifar5m.labeler_eval import measured_plan
from cifar5m.runners.inprocess import run_local
from cifar5m.runners.processes import run_processes, worker_devices
from cifar5m.runners.ray import run_ray
from shards.runtime import resolve_device, start_ray


def plan_generation(cfg: GenerateConfig) -> RunPlan:
    """Validate `cfg`, join Ray when asked, read the model's and labeler's configs, and measure the labeler
    on `cfg.labeler_eval` when given (not on a dry run)."""
    cfg = cfg.validate()
    if cfg.workers > 1:
        worker_devices(cfg.device, cfg.workers)  # too many for the GPUs: say so before anything is loaded
    if cfg.ray and not cfg.dry_run:
        device_type = start_ray(cfg.ray_address)
    else:
        device_type = resolve_device(cfg.device, Cifar5mError).type
    plan = plan_run(cfg, device_type)
    if cfg.labeler_eval and not cfg.dry_run:
        plan = measured_plan(plan, "auto" if cfg.ray else cfg.device)
    return plan


def run_plan(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    """Make every pending shard of `plan` (within its shard range); assemble the manifest when complete."""
    if plan.cfg.ray:
        return run_ray(plan, progress)
    if plan.cfg.workers > 1:
        return run_processes(plan, plan.cfg.workers, progress)
    return run_local(plan, progress)


def generate_dataset(cfg: GenerateConfig, progress: Progress | None = None) -> RunResult:
    """Generate (or resume, or repair) the dataset `cfg` describes; return what this call wrote and failed.

    Args:
        cfg: the settings; validated here.
        progress: told the image total, then each batch's image count (e.g. a tqdm bar).
    Returns:
        The shards written and failed, and the manifest when the dataset is complete.
    """
    return run_plan(plan_generation(cfg), progress)
