"""The decode data path for variable-size JPEG datasets (DogBird): held bytes, crop boxes, decoders that
agree, batches independent of workers and resumes, and a tiny Real vs Ideal run on such a dataset."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from train_fixtures import build_jpeg_dataset, jpeg_image, jpeg_label, tiny_cfg

import shards
from shards.cachedir import decoded_cache_dir
from train.__main__ import main
from train.core import ddp
from train.core.samplers import IdealSampler, RealSampler
from train.data.datasets import open_dataset
from train.data.jpeg import (
    CROP_PCT,
    JpegSource,
    decode_view_pil,
    decode_views_torch,
    plan_views,
    read_encoded,
    view_box,
)
from train.reporting.results import load_run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_jpeg_dataset(tmp_path_factory.mktemp("jpeg") / "dogbird-like", train=400, test=40, per_shard=100)


def test_dataset_has_variable_sizes_and_raw_jpeg_bytes(data):
    manifest = shards.load_manifest(data)
    assert manifest.image_shape is None
    sizes = {image.shape[:2] for _, image, _, _ in shards.iter_shard(data / "data/train-000000.tar")}
    assert len(sizes) > 10


def test_read_encoded_holds_exactly_the_stored_bytes_of_the_rows(data):
    rows = np.array([0, 7, 99, 100, 250, 399])
    held = read_encoded(open_dataset(str(data)), "train", rows)
    assert held.data.nbytes == sum(len(jpeg_image(i, "train")) for i in rows)
    for pos, row in enumerate(rows):
        assert held.encoded(pos).tobytes() == jpeg_image(int(row), "train")
        assert held.labels[pos] == jpeg_label(int(row), "train")
    assert list(held.local(np.array([250, 0]))) == [4, 0]


def test_read_encoded_refuses_a_corrupt_shard(data, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns(".cache"))
    shard = copy / "data/train-000001.tar"
    raw = bytearray(shard.read_bytes())
    raw[5000] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="train-000001.tar: corrupt: sha256"):
        read_encoded(open_dataset(str(copy), verify=False), "train", np.array([150]))


def test_view_boxes_follow_random_resized_crop_and_the_centre_crop():
    rng = np.random.default_rng(0)
    for _ in range(500):
        left, top, w, h = view_box(rng, 300, 200, random_crop=True)
        assert 0 <= left and left + w <= 300 and 0 <= top and top + h <= 200
        assert 0.08 * 60_000 * 0.98 <= w * h <= 60_000
    assert view_box(rng, 300, 200, random_crop=False) == ((300 - 175) / 2, (200 - 175) / 2, 175.0, 175.0)
    assert 175 == CROP_PCT * 200
    views = plan_views(np.random.default_rng(1), [(300, 200)] * 200, "rrc-flip")
    assert 60 < sum(m for _, m in views) < 140  # a fair coin for the mirror
    assert not any(m for _, m in plan_views(np.random.default_rng(1), [(300, 200)] * 20, "none"))


def test_gpu_decoder_logic_agrees_with_the_cpu_decoder(data):
    """decode_views_torch is the GPU path (nvJPEG on CUDA); run on the CPU it must draw the same views."""
    held = read_encoded(open_dataset(str(data)), "train", np.arange(16))
    pil = np.stack(
        [
            decode_view_pil(held.encoded(i).tobytes(), rng, 16, "rrc-flip", "RGB")
            for rng in [np.random.default_rng(5)]
            for i in range(16)
        ]
    )
    tv = decode_views_torch(
        [torch.from_numpy(held.encoded(i)) for i in range(16)],
        np.random.default_rng(5),
        16,
        "rrc-flip",
        3,
        torch.device("cpu"),
    ).numpy()
    assert pil.shape == tv.shape == (16, 16, 16, 3)
    assert np.abs(pil.astype(int) - tv).mean() < 4  # same boxes and mirrors; resamplers differ slightly
    other = np.stack(
        [
            decode_view_pil(held.encoded(i).tobytes(), rng, 16, "rrc-flip", "RGB")
            for rng in [np.random.default_rng(6)]
            for i in range(16)
        ]
    )
    assert np.abs(pil.astype(int) - other).mean() > 10  # other seed, other views


def source(data, sampler, workers: int, steps: int = 6, aug: str = "rrc-flip") -> JpegSource:
    cfg = tiny_cfg(
        data, "unused", image_size=16, aug=aug, batch_size=16, steps=steps, num_workers=workers, eval_train_samples=20
    )
    held = read_encoded(open_dataset(str(data)), "train", sampler.subset)
    return JpegSource(held, sampler, cfg, ddp.Dist(), torch.device("cpu"), 3)


def test_batches_do_not_depend_on_workers_or_resume(data):
    sampler = RealSampler(400, 64, seed=0)
    inline, pooled = source(data, sampler, 0), source(data, sampler, 2)
    inline.skip_to(0)
    pooled.skip_to(0)
    first = [inline.batch(s) for s in range(6)]
    second = [pooled.batch(s) for s in range(6)]
    for (a, ya, ia), (b, yb, ib) in zip(first, second):
        assert torch.equal(a, b) and torch.equal(ya, yb) and np.array_equal(ia, ib)
    assert first[0][0].shape == (16, 16, 16, 3) and first[0][0].dtype == torch.uint8
    assert set(np.concatenate([i for _, _, i in first])) <= set(sampler.subset)
    labels = np.array([jpeg_label(int(i), "train") for i in first[3][2]])
    assert np.array_equal(first[3][1].numpy(), labels)
    resumed = source(data, sampler, 0)
    resumed.skip_to(4)
    assert torch.equal(resumed.batch(4)[0], first[4][0])
    assert not torch.equal(first[0][0], first[1][0])


def test_ideal_source_train_eval_grows_with_the_stream(data):
    ideal = source(data, IdealSampler(400, seed=0), 0)
    assert len(ideal.train_eval(0)[1]) == 0 and len(ideal.train_eval(1)[1]) == 16
    assert len(ideal.train_eval(5)[1]) == 20
    images, labels = ideal.train_eval(5)
    first = IdealSampler(400, seed=0).first_samples(20)
    assert labels.tolist() == [jpeg_label(int(i), "train") for i in first]
    assert images.shape == (20, 16, 16, 3)


def test_real_vs_ideal_on_a_jpeg_dataset(data, tmp_path, capsys):
    exp = tmp_path / "boot"
    args = [
        "bootstrap",
        "--data",
        str(data),
        "--preset",
        "paper-dogbird",
        "--seeds",
        "1",
        "--aug",
        "rrc-flip",
        "--n",
        "64",
        "--model",
        "mcnn",
        "--width",
        "8",
        "--image-size",
        "16",
        "--steps",
        "20",
        "--batch-size",
        "16",
        "--lr",
        "0.05",
        "--lr-update-every-steps",
        "1",
        "--eval-schedule",
        "every:10",
        "--eval-train-samples",
        "64",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--no-progress",
        "--out",
        str(exp),
    ]
    assert main(args) == 0
    real, ideal = load_run(exp / "real"), load_run(exp / "ideal")
    for run in (real, ideal):
        assert run.config["aug"] == "rrc-flip" and run.config["momentum"] == 0.9
        assert run.summary["steps_done"] == 20
    assert real.summary["ledger"]["within_subset"] and real.summary["ledger"]["unique_samples"] == 64
    assert ideal.summary["ledger"]["no_reuse"] and ideal.summary["ledger"]["unique_samples"] == 320
    assert real.rows[0]["test/soft_error"] == pytest.approx(ideal.rows[0]["test/soft_error"])  # same init
    assert real.summary["final"]["test/error"] < 0.3  # stripes are learnable from random crops
    assert (exp / "report.md").is_file()
    cache = decoded_cache_dir(shards.load_manifest(data))
    assert not list(cache.glob("train-*")), "the train split is decoded per batch, never cached"


def test_decode_path_errors_are_one_line(data, tmp_path, capsys):
    base = [
        "run",
        "--data",
        str(data),
        "--mode",
        "real",
        "--n",
        "16",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "r"),
        "--steps",
        "2",
        "--no-progress",
    ]
    assert main(base) == 2
    assert "images differ in size; pass --image-size" in capsys.readouterr().err
    assert main(base + ["--image-size", "16", "--aug", "crop-flip"]) == 2
    err = capsys.readouterr().err
    assert "decoded and cropped per batch" in err and "--data-path memory" in err and "Traceback" not in err


def test_paper_dogbird_preset_states_the_ideal_worlds_passes():
    from train.core.config import apply_preset

    cfg = apply_preset("paper-dogbird", {})
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.momentum, cfg.image_size) == (781, 128, 0.1, 0.9, 224)
    assert cfg.steps == int(10_000 / 128 * 10) and cfg.lr_update_every_steps == 10_000 // 128
    assert cfg.steps * cfg.batch_size < 155_000  # the Ideal World never reuses a DogBird train image
    assert dataclasses.replace(cfg, steps=1_211).steps * 128 > 155_000  # about one pass: reuse from here
    assert json.dumps(cfg.to_dict())


def test_real_vs_ideal_on_a_dogbird_build(tmp_path):
    """The builder's own output (`python -m dogbird build`: variable-size JPEGs) trains through the decode path."""
    from dogbird_fixtures import fake_imagenet, write_folder

    from dogbird.cli import main as dogbird_main

    source = write_folder(tmp_path / "imagenet", fake_imagenet(train_per_class=6))
    data = tmp_path / "dogbird"
    assert (
        dogbird_main(
            [
                "build",
                "--imagenet",
                str(source),
                "--out",
                str(data),
                "--size",
                "24",
                "--samples-per-shard",
                "4",
                "--allow-missing-classes",
                "--log-level",
                "WARNING",
            ]
        )
        == 0
    )
    manifest = shards.load_manifest(data)
    assert manifest.image_shape is None and manifest.splits["train"].count == 23  # one truncated file skipped
    exp = tmp_path / "boot"
    assert (
        main(
            [
                "bootstrap",
                "--data",
                str(data),
                "--preset",
                "paper-dogbird",
                "--seeds",
                "1",
                "--n",
                "8",
                "--model",
                "mlp",
                "--mlp-widths",
                "16",
                "--image-size",
                "16",
                "--steps",
                "5",
                "--batch-size",
                "4",
                "--eval-schedule",
                "every:5",
                "--eval-train-samples",
                "8",
                "--device",
                "cpu",
                "--num-workers",
                "0",
                "--no-progress",
                "--out",
                str(exp),
            ]
        )
        == 0
    )
    real, ideal = load_run(exp / "real"), load_run(exp / "ideal")
    assert real.summary["ledger"]["within_subset"] and real.summary["ledger"]["unique_samples"] == 8
    assert ideal.summary["ledger"]["no_reuse"] and ideal.summary["ledger"]["unique_samples"] == 20
    assert real.rows[-1]["test/error"] is not None and len(real.rows) == len(ideal.rows) == 2


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_jpeg_whose_shard_hash_matches_is_one_line(tmp_path, capsys, workers):
    """The shard was built with a JPEG cut in half (its header reads, its pixels do not): sha256 and verify's
    size checks pass it to the decode path, which must name the sample, not raise PIL's OSError."""
    from shards import DatasetWriter

    writer = DatasetWriter(
        tmp_path / "ds",
        config={"kind": "cut-jpeg"},
        class_names=["dog", "bird"],
        splits={"train": 24, "test": 8},
        samples_per_shard=24,
        image_ext="jpg",
    )
    writer.prepare()
    for spec in writer.pending():
        full = jpeg_image(3, "train")
        cut = full[: len(full) * 3 // 4]
        writer.write_shard(
            spec,
            (
                {
                    "image": cut if (spec.split, i) == ("train", 3) else jpeg_image(i, spec.split),
                    "cls": jpeg_label(i, spec.split),
                }
                for i in range(spec.count)
            ),
        )
    writer.finalize()
    args = [
        "run",
        "--data",
        str(tmp_path / "ds"),
        "--mode",
        "real",
        "--n",
        "24",
        "--image-size",
        "16",
        "--model",
        "mcnn",
        "--width",
        "8",
        "--steps",
        "4",
        "--batch-size",
        "24",
        "--eval-schedule",
        "every:2",
        "--eval-train-samples",
        "1",
        "--device",
        "cpu",
        "--num-workers",
        str(workers),
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith("error: sample 000000003: undecodable image (OSError: ") and line.endswith(
        "its shard matches the manifest, so the dataset was built so: rebuild it from its source"
    )
