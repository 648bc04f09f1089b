"""The demo's stages are keyed by what they consume: a labeler retrained at the same path, or a pool
changed under a finished bootstrap, is redone with --overwrite and refused without it, never reused."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from conftest import make_tiny_labeler, make_tiny_pipeline
from demo_fixtures import tiny_cfg

from demo.data import CLASS_NAMES
from demo.errors import DemoError
from demo.pipeline import run_demo
from demo.stages import STAGES_FILE, StageKey, claim_stage, model_sha256
from shards import load_manifest

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture()
def models(tmp_path):
    root = tmp_path / "models"
    make_tiny_pipeline(root / "digits-ddpm", channels=1, size=8)
    make_tiny_labeler(
        root / "digits-labeler", in_chans=1, input_size=16, label_names=CLASS_NAMES, image_shape=(8, 8, 1)
    )
    return root


def _shard_hashes(folder):
    return [s.sha256 for split in load_manifest(folder).splits.values() for s in split.shards]


def _summaries(cfg):
    return {p: p.stat().st_mtime_ns for p in (cfg.out / "bootstrap").glob("seed*/*/summary.json")}


def test_retrained_labeler_is_refused_then_redone(models, tmp_path):
    cfg = tiny_cfg(models, tmp_path / "out", steps=4)
    run_demo(cfg)
    pool, runs = _shard_hashes(cfg.out / "synthetic"), _summaries(cfg)
    # Retrained in place: same path, same config, other weights.
    shutil.rmtree(models / "digits-labeler")
    make_tiny_labeler(
        models / "digits-labeler", in_chans=1, input_size=16, label_names=CLASS_NAMES, image_shape=(8, 8, 1), seed=1
    )
    with pytest.raises(DemoError, match=r"synthetic: made from other inputs .*changed: labeler\).*--overwrite"):
        run_demo(cfg)
    assert _shard_hashes(cfg.out / "synthetic") == pool  # refused before touching anything

    run_demo(dataclasses.replace(cfg, overwrite=True))
    assert _shard_hashes(cfg.out / "synthetic") != pool
    new_runs = _summaries(cfg)
    assert set(new_runs) == set(runs) and all(new_runs[p] != runs[p] for p in runs)  # every run redone
    recorded = json.loads((cfg.out / STAGES_FILE).read_text())
    assert recorded["synthetic"]["inputs"]["labeler"] == model_sha256(models / "digits-labeler")


def test_remeasured_model_is_not_a_new_input(models, tmp_path):
    """metrics.json describes a model; rewriting it (the labeler measured again) changes no output."""
    before = model_sha256(models / "digits-ddpm")
    (models / "digits-ddpm" / "metrics.json").write_text(json.dumps({"measured": "again"}))
    assert model_sha256(models / "digits-ddpm") == before
    (models / "digits-ddpm" / "unet" / "config.json").write_text(
        (models / "digits-ddpm" / "unet" / "config.json").read_text() + "\n"
    )
    assert model_sha256(models / "digits-ddpm") != before


def test_pool_changed_under_a_finished_bootstrap_is_refused(models, tmp_path):
    cfg = tiny_cfg(models, tmp_path / "out", steps=4)
    run_demo(cfg)
    recorded = StageKey.from_dict(json.loads((cfg.out / STAGES_FILE).read_text())["bootstrap"])
    other_pool = dataclasses.replace(recorded, inputs={**recorded.inputs, "synthetic": "0" * 64})
    with pytest.raises(DemoError, match=r"bootstrap: made from other inputs .*\(changed: synthetic\)"):
        claim_stage(cfg.out, other_pool, cfg.out / "bootstrap", overwrite=False)
    assert (cfg.out / "bootstrap" / "experiment.json").is_file()
    claim_stage(cfg.out, recorded, cfg.out / "bootstrap", overwrite=False)  # the same inputs: kept


def test_output_without_a_recorded_key_is_not_reused(tmp_path):
    (tmp_path / "bootstrap" / "sections").mkdir(parents=True)
    key = StageKey("bootstrap", {"seeds": 2}, {"synthetic": "a" * 64})
    with pytest.raises(DemoError, match=r"inputs were not recorded"):
        claim_stage(tmp_path, key, tmp_path / "bootstrap", overwrite=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(DemoError, match=r"not the demo's to replace"):
        claim_stage(tmp_path, dataclasses.replace(key, stage="mine"), tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").is_file()
    claim_stage(tmp_path, key, tmp_path / "bootstrap", overwrite=True)
    assert not (tmp_path / "bootstrap").exists()
    assert StageKey.from_dict(json.loads((tmp_path / STAGES_FILE).read_text())["bootstrap"]) == key
