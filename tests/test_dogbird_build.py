"""dogbird build end to end on tiny fake ImageNets: labels, counts, skips, layouts, resume, loaders, training."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from dogbird_fixtures import (
    BIRDS,
    DOGS,
    TRUNCATED,
    _encode,
    dogbird_counts,
    fake_imagenet,
    shard_hashes,
    write_folder,
    write_parquet,
    write_wds,
)
from hub_server import FakeHub
from PIL import Image

from dogbird.cli import main
from shards import iter_samples, load_manifest

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--size",
    "16",
    "--samples-per-shard",
    "4",
    "--min-shards",
    "1",
    "--allow-missing-classes",
    "--log-level",
    "WARNING",
]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


def build(source, out, *extra) -> int:
    return main(["build", "--imagenet", str(source), "--out", str(out), *ARGS, *extra])


@pytest.fixture(scope="module")
def images():
    return fake_imagenet()


@pytest.fixture(scope="module")
def sources(tmp_path_factory, images) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imagenet")
    return {
        "folder": write_folder(root / "folder", images),
        "devkit": write_folder(root / "devkit", images, val="devkit"),
        "kaggle": write_folder(root / "kaggle", images, val="kaggle", kaggle_nesting=True),
        "parquet": write_parquet(root / "parquet", images),
        "wds": write_wds(root / "wds", images),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sources) -> Path:
    out = tmp_path_factory.mktemp("reference") / "dogbird"
    assert build(sources["folder"], out, "--res", "16") == 0
    return out


def test_labels_counts_skips_and_no_leaks(reference, images):
    manifest = load_manifest(reference)
    expected = dogbird_counts(images)
    assert {s: i.label_histogram for s, i in manifest.splits.items()} == expected
    assert {s: i.count for s, i in manifest.splits.items()} == {s: sum(c) for s, c in expected.items()}
    assert [(s["split"], s["source_id"], s["file"]) for s in manifest.skipped] == [
        ("test", TRUNCATED["test"], f"val/{BIRDS[1]}/{TRUNCATED['test']}.JPEG"),
        ("train", TRUNCATED["train"], f"train/{BIRDS[1]}/{TRUNCATED['train']}.JPEG"),
    ]
    assert all("Truncated" in s["reason"] or "truncated" in s["reason"] for s in manifest.skipped)
    for info in manifest.splits.values():
        samples = list(iter_samples([reference / f for f in info.shard_files()]))
        assert [key for key, *_ in samples] == [f"{i:09d}" for i in range(info.count)]
        for _, image, cls, meta in samples:
            assert meta["wnid"] in DOGS + BIRDS and cls == (meta["wnid"] in BIRDS)
            assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) == 16
            assert set(meta) == {"wnid", "imagenet_index", "class_name", "source_id"}
    assert manifest.image_ext == "jpg" and manifest.class_names == ["hunting_dog", "bird"]
    card = (reference / "README.md").read_text()
    assert "hunting_dog.n.01" in card and "bird.n.01" in card


@pytest.mark.parametrize("layout", ["devkit", "kaggle", "parquet", "wds"])
def test_every_layout_gives_the_same_shards(layout, sources, reference, tmp_path):
    assert build(sources[layout], tmp_path / "out") == 0
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)
    staged = list((tmp_path / "out" / ".work").glob("stage-*/**/*.JPEG"))
    assert staged == [] or layout not in ("parquet", "wds")  # the staged copy is pruned once the shards exist


def test_worker_processes_give_the_same_shards(sources, reference, tmp_path):
    assert build(sources["folder"], tmp_path / "out", "--workers", "2") == 0
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)


def test_webdataset_over_http(sources, reference, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sources["wds"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/imagenet1k-{{train-{{0000..0001}},validation-00}}.tar"
        assert build(url, tmp_path / "out") == 0
    finally:
        server.shutdown()
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)


class LocalHub:
    """Stands in for huggingface_hub.HfFileSystem's listing: `datasets/fake/imagenet-1k/...` globbed in a
    local folder (the files themselves are then read over HTTP from the fake Hub, as shards.read does)."""

    repo = "datasets/fake/imagenet-1k"
    root: Path

    def glob(self, pattern: str) -> list[str]:
        rel = pattern[len(self.repo) :].lstrip("/")
        return [f"{self.repo}/{p.relative_to(self.root)}" for p in sorted(self.root.glob(rel))]


def test_hub_parquet_source(sources, reference, tmp_path, monkeypatch):
    import huggingface_hub

    LocalHub.root = sources["parquet"]
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", LocalHub)
    hub = FakeHub().start()
    try:
        hub.add("fake/imagenet-1k", sources["parquet"])
        hub.endpoint(monkeypatch)
        assert build(f"hf://{LocalHub.repo}", tmp_path / "out") == 0
    finally:
        hub.stop()
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)


KILL_AT_SECOND_TRAIN_SHARD = """
import os, signal, sys
import shards.writer
write_shard = shards.writer.DatasetWriter.write_shard

def dying(samples):
    for n, sample in enumerate(samples):
        if n == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-shard: a partial temporary file is left behind
        yield sample

def patched(self, spec, samples, extra=None):
    if (spec.split, spec.shard_index) == ("train", 1):
        samples = dying(samples)
    return write_shard(self, spec, samples, extra)

shards.writer.DatasetWriter.write_shard = patched
from dogbird.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_sigkill_equals_an_uninterrupted_build(sources, reference, tmp_path):
    out = tmp_path / "out"
    argv = ["build", "--imagenet", str(sources["parquet"]), "--out", str(out), *ARGS]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_SECOND_TRAIN_SHARD, *argv],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    assert not (out / "manifest.json").exists() and list((out / ".shards" / "tmp").iterdir())
    assert (out / "data" / "train-000000.tar").is_file()
    assert main(argv) == 0
    assert shard_hashes(out) == shard_hashes(reference)
    assert not list((out / ".shards" / "tmp").iterdir())


def test_missing_classes_are_named(sources, tmp_path, capsys):
    argv = ["build", "--imagenet", str(sources["folder"]), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        f"error: {sources['folder']}: missing 118 of the 122 DogBird classes (train: n01514668 "
        "(cock), n01518878 (ostrich)"
    )
    assert "n02087394 (Rhodesian ridgeback)" in err and "; test: n01514668 (cock)" in err
    assert "n02088094" not in err and err.endswith("pass --allow-missing-classes to build without them")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [{}, {"notes.txt": b"hello", "images/a.jpg": b"x"}])
def test_unrecognised_source_lists_the_layouts(content, tmp_path):
    for name, data in content.items():
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(data)
    (tmp_path / "src").mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "dogbird", "build", "--imagenet", str(tmp_path / "src"), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: {tmp_path / 'src'}: empty or not a recognised ImageNet layout; accepted: an ILSVRC2012 folder"
    )
    assert "imagenet1k-{train,validation}-NNNN.tar" in last and not (tmp_path / "out").exists()


def test_foreign_output_folder_is_refused_untouched(sources, tmp_path, capsys):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    assert build(sources["parquet"], out) == 2
    assert "not empty and not a dataset being built by this toolkit (found thesis.tex)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_res_copy_is_a_fixed_size_dataset(reference):
    parent, copy = load_manifest(reference), load_manifest(reference / "res16")
    assert copy.image_shape == [16, 16, 3] and copy.image_ext == "png"
    assert {s: (i.count, i.label_histogram) for s, i in copy.splits.items()} == {
        s: (i.count, i.label_histogram) for s, i in parent.splits.items()
    }
    first = next(iter_samples([reference / "res16" / copy.splits["train"].shards[0].file]))
    assert first[1].shape == (16, 16, 3) and first[3] == next(iter_samples([reference / "data/train-000000.tar"]))[3]


@pytest.mark.parametrize("mode, n", [("real", "8"), ("ideal", None)])
def test_todays_trainer_runs_on_the_res_copy(reference, tmp_path, mode, n):
    cmd = [
        sys.executable,
        "-m",
        "train",
        "run",
        "--data",
        str(reference / "res16"),
        "--mode",
        mode,
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--model",
        "mlp",
        "--mlp-widths",
        "8",
        "--device",
        "cpu",
        "--eval-schedule",
        "every:3",
        "--eval-train-samples",
        "4",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(
        cmd + (["--n", n] if n else []), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps_done"] == 3


def test_hf_datasets_and_webdataset_read_it(reference):
    import webdataset as wds
    from datasets import load_dataset

    manifest = load_manifest(reference)
    files = [str(reference / f) for f in manifest.splits["train"].shard_files()]
    ds = load_dataset("webdataset", data_files={"train": files}, split="train")
    assert sorted(ds["cls"]) == sorted(
        [0] * manifest.splits["train"].label_histogram[0] + [1] * manifest.splits["train"].label_histogram[1]
    )
    assert ds[0]["jpg"].mode == "RGB" and ds[0]["json"]["wnid"] in DOGS + BIRDS
    samples = list(wds.WebDataset(files, shardshuffle=False).decode("rgb8").to_tuple("jpg", "cls"))
    assert len(samples) == manifest.splits["train"].count and samples[0][0].shape[2] == 3


@pytest.mark.slow
def test_ray_gives_the_same_shards(sources, reference, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert build(sources["wds"], tmp_path / "out", "--ray") == 0
    finally:
        ray.shutdown()
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)


def test_rerun_of_a_finished_staged_build_needs_no_source(sources, reference, tmp_path):
    source = tmp_path / "parquet"
    shutil.copytree(sources["parquet"], source)
    out = tmp_path / "out"
    assert build(source, out) == 0
    shutil.rmtree(source)  # gone (or offline): the finished build is checked from its kept listing
    assert build(source, out) == 0
    shutil.copytree(sources["parquet"], source)
    (out / "data" / "train-000001.tar").write_bytes(b"damaged")  # a shard to remake: the source is staged again
    assert build(source, out) == 0
    assert shard_hashes(out) == shard_hashes(reference)


def test_a_file_broken_after_the_scan_is_an_error_then_rescanned(sources, tmp_path, capsys):
    source, out = tmp_path / "folder", tmp_path / "out"
    shutil.copytree(sources["folder"], source)
    assert build(source, out) == 0
    victim = next(iter_samples([out / "data" / "train-000000.tar"]))[3]
    path = source / "train" / victim["wnid"] / f"{victim['source_id']}.JPEG"
    data = path.read_bytes()
    path.write_bytes(data[:100] + bytes(len(data) - 100))  # same size: the listing cannot tell
    (out / "data" / "train-000000.tar").unlink()
    assert build(source, out) == 2
    assert f"{path.relative_to(source)}: passed the scan but failed to decode" in capsys.readouterr().err
    assert build(source, out, "--overwrite") == 0  # rescanned: another dataset now, so --overwrite
    assert victim["source_id"] in [s["source_id"] for s in load_manifest(out).skipped]


def test_an_image_too_long_to_resize_is_skipped_and_listed_and_reruns_pass(sources, tmp_path, capsys):
    source, out = tmp_path / "folder", tmp_path / "out"
    shutil.copytree(sources["folder"], source)
    long = source / "train" / DOGS[0] / f"{DOGS[0]}_99.JPEG"
    long.write_bytes(_encode(Image.new("RGB", (1, 5000), (9, 9, 9)), "JPEG"))  # 16 x 80,000 px at --size 16
    assert build(source, out) == 0
    [entry] = [s for s in load_manifest(out).skipped if s["source_id"] == f"{DOGS[0]}_99"]
    assert entry["reason"] == (
        "ValueError: a 1x5000 image: resizing its shorter side to 16 px makes the longer "
        "one 80,000 px, over JPEG's limit of 65,500"
    )
    assert build(source, out) == 0  # the re-run agrees (was: every re-run failed on it)


@pytest.mark.parametrize("copy", ["n02099601_1 copy.JPEG", "val-in-two-classes"])
def test_two_files_with_one_imagenet_id_are_refused(sources, tmp_path, capsys, copy):
    source, out = tmp_path / "folder", tmp_path / "out"
    shutil.copytree(sources["folder"], source)
    if copy == "val-in-two-classes":
        first = next((source / "val" / DOGS[0]).iterdir())
        shutil.copy(first, source / "val" / BIRDS[0] / first.name)
        pair = f"val/{BIRDS[0]}/{first.name} and val/{DOGS[0]}/{first.name} are both ImageNet image {first.stem}"
    else:
        shutil.copy(source / "train" / DOGS[1] / "n02099601_1.JPEG", source / "train" / DOGS[1] / copy)
        pair = f"train/{DOGS[1]}/{copy} and train/{DOGS[1]}/n02099601_1.JPEG are both ImageNet image n02099601_1"
    assert build(source, out) == 2
    err = capsys.readouterr().err
    assert f"{pair}; keep one file per image" in err and "Traceback" not in err
    assert not (out / "manifest.json").exists()


def test_a_resume_over_a_replaced_source_image_is_refused_naming_it(sources, tmp_path, capsys):
    source, out = tmp_path / "folder", tmp_path / "out"
    shutil.copytree(sources["folder"], source)
    assert build(source, out) == 0
    (out / "manifest.json").unlink()
    (out / "data" / "train-000000.tar").unlink()  # a partly written dataset
    meta = next(iter_samples([out / "data" / "train-000001.tar"]))[3]
    victim = source / "train" / meta["wnid"] / f"{meta['source_id']}.JPEG"
    victim.write_bytes(victim.read_bytes() + b"\0" * 7)  # replaced by a file of another size
    capsys.readouterr()
    assert build(source, out) == 2
    err = capsys.readouterr().err
    assert f"source_files (source): {victim.relative_to(source)} changed" in err and "--overwrite" in err
    assert not (out / "data" / "train-000000.tar").exists()
