"""Ray: a local 2-CPU cluster (one actor per CPU slot) writes byte-identical shards to a local run."""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from cifar5m.config import GenerateConfig
from cifar5m.generate import plan_run, run_local

ray = pytest.importorskip("ray")


def _hashes(root) -> dict[str, str]:
    files = sorted((root / "data").glob("*.tar")) + [root / "manifest.json"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_ray_equals_local(tmp_path, tiny_pipeline, tiny_labeler):
    from cifar5m.ray_run import run_ray

    cfg = GenerateConfig(out_dir=str(tmp_path / "ray"), labeler=f"local-dir:{tiny_labeler}", model=str(tiny_pipeline),
                         train=60, test=20, samples_per_shard=20, batch_size=8, ray=True).validate()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_ray(plan_run(cfg, "cpu"))
    finally:
        ray.shutdown()
    assert not result.failed and len(result.written) == 4 and result.manifest is not None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run one thread each; bytes match under the same arithmetic
    try:
        local_cfg = dataclasses.replace(cfg, out_dir=str(tmp_path / "local"), ray=False)
        run_local(plan_run(local_cfg, "cpu"))
    finally:
        torch.set_num_threads(threads)
    assert _hashes(tmp_path / "ray") == _hashes(tmp_path / "local")
