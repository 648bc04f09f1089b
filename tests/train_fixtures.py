"""Tiny datasets and configs for the trainer's tests, written with the real `shards.DatasetWriter`.

Each image shows its label's fixed binary template (so a small model fits them within a few hundred
steps) plus faint noise seeded by its index (so every sample's bytes differ and follow from its index).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from shards import DatasetWriter
from shards.card import CardInfo
from train.core.config import RunConfig
from train.run import loop
from train.run.loop import run_training

NUM_CLASSES = 10


def label_of(index: int, split: str) -> int:
    return (index * 7 + (3 if split == "test" else 0)) % NUM_CLASSES


def template(label: int, size: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + label)
    return (rng.random((size, size, channels)) < 0.5).astype(np.uint8) * 200


def sample_image(index: int, split: str, size: int = 8, channels: int = 1) -> np.ndarray:
    noise = np.random.default_rng([index, split == "test"]).integers(0, 40, (size, size, channels))
    return (template(label_of(index, split), size, channels) + noise).astype(np.uint8)


def build_dataset(
    out: Path,
    train: int = 400,
    test: int = 100,
    size: int = 8,
    channels: int = 1,
    per_shard: int = 100,
    splits: dict[str, int] | None = None,
    class_names: list[str] | None = None,
) -> Path:
    """Write a dataset of `train`/`test` samples (or the given `splits`) and return its folder."""
    splits = splits or {"train": train, "test": test}
    writer = DatasetWriter(
        out,
        config={"kind": "train-test-templates", "size": size, "channels": channels},
        class_names=class_names or [f"c{i}" for i in range(NUM_CLASSES)],
        splits=splits,
        samples_per_shard=per_shard,
    )
    writer.prepare()
    for spec in writer.pending():
        samples = (
            {"image": sample_image(i, spec.split, size, channels), "cls": label_of(i, spec.split), "json": {"index": i}}
            for i in range(spec.first_index, spec.first_index + spec.count)
        )
        writer.write_shard(spec, samples)
    assert writer.finalize() is not None
    return out


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def build_protos(out, train=400, test=100, seed=0, size=8, noise=60.0):
    """4 classes, each a fixed random 1x8x8 prototype plus noise: an MLP fits 40 of them in ~15 steps."""
    protos = np.random.default_rng(seed).integers(0, 256, size=(4, size, size, 1))

    def samples(spec):
        rng = np.random.default_rng([seed, len(spec.split), spec.first_index])
        for i in range(spec.first_index, spec.first_index + spec.count):
            c = int(rng.integers(4))
            image = np.clip(protos[c] + rng.normal(0, noise, protos[c].shape), 0, 255).astype(np.uint8)
            yield {"image": image, "cls": c, "json": {"index": i}}

    writer = DatasetWriter(
        out,
        config={"kind": "protos", "seed": seed, "noise": noise},
        class_names=["a", "b", "c", "d"],
        splits={"train": train, "test": test},
        samples_per_shard=200,
        card=CardInfo(pretty_name="protos"),
    )
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(spec, samples(spec))
    assert writer.finalize() is not None
    return out


def tiny_cfg(data, out, **kw):
    values = dict(
        data=str(data),
        n=40,
        steps=24,
        batch_size=16,
        model="mlp",
        mlp_widths=(32,),
        lr=0.05,
        eval_schedule="every:4",
        eval_train_samples=40,
        device="cpu",
        num_workers=0,
        out_dir=str(out),
    )
    values.update(kw)
    return RunConfig(**values)


def jpeg_image(index: int, split: str) -> bytes:
    """A variable-size RGB JPEG (18-40 px a side) of its label's stripes: horizontal (0) or vertical (1)."""
    import io

    from PIL import Image

    rng = np.random.default_rng([index, split == "test", 7])
    height, width = (int(v) for v in rng.integers(18, 41, size=2))
    label = jpeg_label(index, split)
    stripes = (np.arange(height if label == 0 else width) // 3 % 2 * 180 + 40).astype(np.uint8)
    plane = np.repeat(stripes[:, None], width, 1) if label == 0 else np.repeat(stripes[None, :], height, 0)
    noisy = np.clip(plane[:, :, None] + rng.integers(-20, 21, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def jpeg_label(index: int, split: str) -> int:
    return (index + (split == "test")) % 2


def build_jpeg_dataset(out: Path, train: int = 120, test: int = 40, per_shard: int = 40) -> Path:
    """A DogBird-like dataset: variable-size JPEG bytes stored as they are, two classes."""
    writer = DatasetWriter(
        out,
        config={"kind": "train-test-jpeg-stripes"},
        class_names=["dog", "bird"],
        splits={"train": train, "test": test},
        samples_per_shard=per_shard,
        image_ext="jpg",
    )
    writer.prepare()
    for spec in writer.pending():
        samples = (
            {"image": jpeg_image(i, spec.split), "cls": jpeg_label(i, spec.split), "json": {"index": i}}
            for i in range(spec.first_index, spec.first_index + spec.count)
        )
        writer.write_shard(spec, samples)
    assert writer.finalize() is not None
    return out


def killed_run(cfg: RunConfig, monkeypatch, at: int) -> Path:
    """Train `cfg` until step `at`, as if the process were killed there (KeyboardInterrupt mid-loop)."""
    step_once = loop.Trainer.train_step

    def killed(self, model):
        if self.step == at:
            raise KeyboardInterrupt
        step_once(self, model)

    monkeypatch.setattr(loop.Trainer, "train_step", killed)
    try:
        run_training(cfg, progress=False)
        raise AssertionError(f"the run was not interrupted at step {at}")
    except KeyboardInterrupt:
        pass
    finally:
        monkeypatch.undo()
    return Path(cfg.out_dir)


def run_torchrun(script: Path, cwd: Path, ranks: int = 2, timeout_s: int = 240) -> None:
    """Run `script` under torchrun with `ranks` CPU processes; kill the whole group on a hang."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", str(script)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the ranks too, not only torchrun
        raise
    assert proc.returncode == 0, stderr[-3000:]


def relabel_dataset(root: Path):
    """Rebuild the dataset at `root` under its own config with every label moved to the next class: other
    bytes, the same config hash (what a regenerated dataset with a retrained labeler looks like). Returns
    the new manifest."""
    from shards import iter_samples, load_manifest

    m = load_manifest(root)
    samples = {s: list(iter_samples(root / f for f in info.shard_files())) for s, info in m.splits.items()}
    shutil.rmtree(root)
    writer = DatasetWriter(
        root, m.config, m.class_names, {s: i.count for s, i in m.splits.items()}, m.samples_per_shard
    )
    writer.prepare()
    for spec in writer.pending():
        rows = samples[spec.split][spec.first_index : spec.first_index + spec.count]
        writer.write_shard(
            spec,
            ({"image": image, "cls": (cls + 1) % len(m.class_names), "json": meta} for _, image, cls, meta in rows),
        )
    return writer.finalize()
