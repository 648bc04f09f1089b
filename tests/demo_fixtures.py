"""The demo's settings at test size (a plain helper; the `tiny_models` fixture is in conftest.py)."""

from __future__ import annotations

from demo.config import DemoConfig


def tiny_cfg(models, out, **kw) -> DemoConfig:
    values = dict(
        out_dir=str(out),
        models_dir=str(models),
        train=256,
        test=64,
        samples_per_shard=128,
        gen_steps=2,
        gen_batch_size=64,
        n=64,
        steps=8,
        batch_size=16,
        model="mcnn",
        width=4,
        warmup_steps=2,
        seeds=2,
        eval_schedule="every:4",
        min_confidence=0.0,
        quality_sizes=(100,),
        device="cpu",
        workers=1,
        threads=1,
    )
    values.update(kw)
    return DemoConfig(**values)
