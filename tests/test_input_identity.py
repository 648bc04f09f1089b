"""A dataset's inputs are identified by content: a resume over changed weights, a changed import source or a
changed npz part is refused with one line naming what changed; the same inputs at another path are the same
dataset; no absolute local path enters a manifest or a card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_labeler
from PIL import Image

from cifar5m.cli import main as cifar5m_main
from shards import load_manifest
from shards.cli import main as shards_main
from shards.identity import InputIdentity, identify_folder, input_changes


def generate(out: Path, pipeline: Path, labeler: Path, *extra: str) -> int:
    return cifar5m_main(
        [
            "generate",
            "--model",
            str(pipeline),
            "--labeler",
            f"local-dir:{labeler}",
            "--out",
            str(out),
            "--train",
            "4",
            "--test",
            "0",
            "--shard-size",
            "2",
            "--batch-size",
            "2",
            *extra,
        ]
    )


def test_a_resume_with_retrained_labeler_weights_is_refused_naming_the_file(
    tiny_pipeline, tiny_labeler, tmp_path, capsys
):
    labeler = tmp_path / "labeler"
    shutil.copytree(tiny_labeler, labeler)
    out = tmp_path / "gen"
    assert generate(out, tiny_pipeline, labeler, "--shards", "0:1") == 0  # half of the dataset
    make_tiny_labeler(labeler, seed=1)  # retrained in place: same path, other weights
    capsys.readouterr()
    assert generate(out, tiny_pipeline, labeler) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "labeler.weights (local-dir:labeler): model.safetensors changed" in err and "--overwrite" in err
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-000000.tar"]  # nothing more written
    assert generate(out, tiny_pipeline, labeler, "--overwrite") == 0
    weights = load_manifest(out).config["labeler"]["weights"]
    assert weights["name"] == "local-dir:labeler" and weights["listing"][-1]["path"] == "model.safetensors"


def test_the_same_models_at_another_path_resume_and_a_recorded_accuracy_changes_nothing(
    tiny_pipeline, tiny_labeler, tmp_path
):
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        shutil.copytree(tiny_pipeline, root / "ddpm")
        shutil.copytree(tiny_labeler, root / "labeler")
    out = tmp_path / "gen"
    assert generate(out, first / "ddpm", first / "labeler", "--shards", "0:1") == 0
    config = json.loads((second / "labeler" / "config.json").read_text())
    config.update(label_accuracy=0.97, label_accuracy_on="real test")  # what `train eval --record` adds
    (second / "labeler" / "config.json").write_text(json.dumps(config))
    assert generate(out, second / "ddpm", second / "labeler") == 0  # resumed: same content, same names
    manifest = load_manifest(out)
    assert (
        manifest.config["generator"]["model"] == "ddpm" and manifest.config["labeler"]["model"] == "local-dir:labeler"
    )


def test_a_changed_unet_is_named(tiny_pipeline, tiny_labeler, tmp_path, capsys):
    pipeline = tmp_path / "ddpm"
    shutil.copytree(tiny_pipeline, pipeline)
    out = tmp_path / "gen"
    assert generate(out, pipeline, tiny_labeler, "--shards", "0:1") == 0
    scheduler = pipeline / "scheduler" / "scheduler_config.json"
    settings = json.loads(scheduler.read_text())
    scheduler.write_text(json.dumps({**settings, "beta_end": 0.4}))  # other images, same weights
    assert generate(out, pipeline, tiny_labeler) == 2
    assert "generator.weights (ddpm): scheduler/scheduler_config.json changed" in capsys.readouterr().err


def write_image_folder(root: Path, shade: int = 0) -> Path:
    for split, count in (("train", 4), ("test", 2)):
        for r in range(count):
            folder = root / split / ("cat" if r % 2 else "dog")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4, 3), r * 10 + shade, np.uint8)).save(folder / f"{r:03d}.png")
    return root


def test_an_import_over_a_changed_source_is_refused_and_dot_slash_is_the_same_source(tmp_path, monkeypatch, capsys):
    source = write_image_folder(tmp_path / "src")
    out = tmp_path / "out"
    args = ["import", str(source), "--out", str(out), "--shard-size", "2"]
    assert shards_main(args) == 0
    monkeypatch.chdir(tmp_path)
    assert shards_main(["import", "./src/", "--out", "out", "--shard-size", "2"]) == 0  # same config: no refusal
    assert load_manifest(out).config["source"] == "src"
    (out / "manifest.json").unlink()
    (out / "data" / "train-000001.tar").unlink()  # a partly written dataset
    Image.fromarray(np.full((4, 4, 3), 99, np.uint8)).save(source / "train" / "cat" / "001.png")
    capsys.readouterr()
    assert shards_main(args) == 2
    err = capsys.readouterr().err
    assert "source_files (src): train/cat/001.png changed" in err and "made from other inputs" in err
    assert not (out / "data" / "train-000001.tar").exists()


def test_import_npz_over_a_replaced_part_is_refused(tmp_path, capsys):
    from cifar5m_fixtures import make_part

    paths = [tmp_path / f"part{k}.npz" for k in range(2)]
    for k, path in enumerate(paths):
        make_part(path, 6, k)
    out = tmp_path / "ds"
    args = ["import-npz", *map(str, paths), "--out", str(out), "--shard-size", "3", "--workers", "1"]
    assert cifar5m_main(args) == 0
    parts = load_manifest(out).config["part_files"]["listing"]
    assert [p["path"] for p in parts] == ["[0] part0.npz", "[1] part1.npz"]
    make_part(paths[0], 6, 7)  # re-downloaded with other bytes: same name, same rows
    (out / "manifest.json").unlink()
    assert cifar5m_main(args) == 2
    assert "part_files (parts): [0] part0.npz changed" in capsys.readouterr().err


def test_input_changes_names_only_identities_that_differ(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"one")
    old = identify_folder(tmp_path / "m").to_dict()
    (tmp_path / "m" / "extra.bin").write_bytes(b"two")
    new = identify_folder(tmp_path / "m").to_dict()
    assert input_changes({"a": {"weights": old}, "seed": 1}, {"a": {"weights": new}, "seed": 2}) == [
        "a.weights (m): extra.bin added"
    ]
    assert input_changes({"w": old}, {"w": old}) == []
    assert InputIdentity.from_dict(json.loads(json.dumps(new))).to_dict() == new  # as read back from a config


@pytest.mark.parametrize("name", ["manifest.json", "README.md"])
def test_no_manifest_or_card_written_here_holds_a_local_path(tiny_pipeline, tiny_labeler, tmp_path, name):
    out = tmp_path / "gen"
    assert generate(out, tiny_pipeline, tiny_labeler) == 0
    text = (out / name).read_text()
    for path in (tmp_path, tiny_pipeline, tiny_labeler):
        assert str(path.parent) not in text and str(path.resolve().parent) not in text
    assert "tiny-ddpm" in text
    if name == "README.md":  # the card names the content hash runs are keyed by
        assert load_manifest(out).data_sha256() in text


def test_hub_models_are_recorded_by_id_and_the_revision_their_files_came_from(
    tiny_pipeline, tiny_labeler, tmp_path, monkeypatch
):
    import huggingface_hub

    from cifar5m import models
    from cifar5m.label import read_labeler_info

    # huggingface_hub's cache layout: files of a commit lie in models--ORG--NAME/snapshots/<commit>/
    pipe = shutil.copytree(tiny_pipeline, tmp_path / "models--org--ddpm" / "snapshots" / "c0ffee")
    labeler_files = shutil.copytree(tiny_labeler, tmp_path / "models--org--labeler" / "snapshots" / "beef")
    monkeypatch.setattr(models, "_download", lambda repo_id: pipe)
    pipeline = models.resolve_pipeline("org/ddpm")
    assert (pipeline.name, pipeline.weights.revision) == ("org/ddpm", "c0ffee")
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda repo_id, filename, revision=None: str(labeler_files / filename)
    )
    labeler = read_labeler_info("hf-hub:org/labeler", None)
    assert labeler.name == "hf-hub:org/labeler" and labeler.weights.revision == "beef"
    assert [r.path for r in labeler.weights.listing] == ["config.json (settings)", "model.safetensors"]


def test_a_hub_import_source_is_read_at_the_revision_it_is_recorded_with(monkeypatch):
    import datasets
    import huggingface_hub

    from shards import importer

    class Info:
        sha = "5eed" * 10

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, repo_id: Info())
    identity = importer.source_identity("org/data")
    assert (identity.name, identity.revision, identity.files) == ("org/data", "5eed" * 10, 0)
    seen = {}
    monkeypatch.setattr(
        datasets, "load_dataset", lambda source, **kw: seen.update(kw) or datasets.IterableDatasetDict()
    )
    importer.load_streaming("org/data", identity.revision)
    assert seen["revision"] == "5eed" * 10


def test_a_folder_made_before_identities_is_refused_in_one_short_line(tiny_pipeline, tiny_labeler, tmp_path, capsys):
    out = tmp_path / "gen"
    assert generate(out, tiny_pipeline, tiny_labeler, "--shards", "0:1") == 0
    state = out / ".shards" / "config.json"
    old = json.loads(state.read_text())
    for part in ("generator", "labeler"):  # as an older toolkit wrote it: the path, no weights
        del old["config"][part]["weights"]
    old["config"]["generator"]["model"], old["hash"] = str(tiny_pipeline), "0" * 64
    state.write_text(json.dumps(old))
    capsys.readouterr()
    assert generate(out, tiny_pipeline, tiny_labeler) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 800 and "another config (config.generator.model: " in err
