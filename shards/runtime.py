"""Where work runs: the device a `--device` flag names and the Ray cluster a `--ray` flag joins.

The one home of both for every tool. torch and ray are imported inside the functions, so `import shards`
(and every command's `--help`) stays free of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shards.errors import ShardsError, ToolkitError

if TYPE_CHECKING:
    import torch

RAY_EXTRA_HINT = "--ray needs Ray: pip install 'deep-bootstrap-data[ray]'"


def resolve_device(spec: str = "auto", error: type[ToolkitError] = ShardsError) -> torch.device:
    """`auto` -> cuda when a GPU is visible, else cpu; `cuda` and `cuda:N` are checked against the GPUs here.

    Args:
        spec: auto, cpu, cuda or cuda:N (any other torch device name is passed through).
        error: the caller's package error, raised for a device that is not here.
    """
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise error(f"--device={spec}: no CUDA device here; use --device cpu or auto")
        count = torch.cuda.device_count()
        if ":" in spec and int(spec.split(":")[1]) >= count:
            raise error(
                f"--device={spec}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1}); "
                "pick one of them, or --device cuda"
            )
    return torch.device(spec)


def start_ray(address: str | None = None) -> str:
    """Join the cluster at `address` (else RAY_ADDRESS, else start a local one) unless already joined.

    Returns:
        "cuda" when the cluster has a GPU, else "cpu": the device type its workers will use.
    """
    try:
        import ray
    except ImportError as exc:
        raise ShardsError(RAY_EXTRA_HINT) from exc
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=True)
    return "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"
