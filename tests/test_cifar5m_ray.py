"""Ray: a local 2-CPU cluster (one actor per CPU slot) writes byte-identical shards to a local run."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from cifar5m.config import GenerateConfig
from cifar5m.generate import plan_run
from cifar5m.runners.inprocess import run_local

ray = pytest.importorskip("ray")


def _hashes(root) -> dict[str, str]:
    files = sorted((root / "data").glob("*.tar")) + [root / "manifest.json"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_ray_equals_local(tmp_path, tiny_pipeline, tiny_labeler):
    from cifar5m.runners.ray import run_ray  # imports ray: only after the importorskip above

    cfg = GenerateConfig(
        out_dir=str(tmp_path / "ray"),
        labeler=f"local-dir:{tiny_labeler}",
        model=str(tiny_pipeline),
        train=60,
        test=20,
        samples_per_shard=20,
        min_shards=1,
        batch_size=8,
        ray=True,
    ).validate()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_ray(plan_run(cfg, "cpu"))
    finally:
        ray.shutdown()
    assert not result.failed and len(result.written) == 4 and result.manifest is not None
    # the actors and the local runner both use generate.CPU_THREADS: the same arithmetic, the same bytes
    run_local(plan_run(dataclasses.replace(cfg, out_dir=str(tmp_path / "local"), ray=False), "cpu"))
    assert _hashes(tmp_path / "ray") == _hashes(tmp_path / "local")
