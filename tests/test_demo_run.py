"""`python -m demo run` (make demo) at a tiny size: every stage, the report with its generator
section and headline, the summary, resume without redoing work, and the checks that run before any work."""

from __future__ import annotations

import dataclasses
import json

import pytest
from demo_fixtures import tiny_cfg

from demo import pipeline
from demo.cli import main
from demo.config import DemoConfig
from demo.data import CLASS_NAMES
from demo.errors import DemoError
from demo.pipeline import run_demo
from demo.report import generator_markdown, power_sentence
from shards import iter_samples, load_manifest


@pytest.fixture(scope="module")
def finished(tiny_models, tmp_path_factory):
    """One tiny demo run (generating on 2 worker processes), and what it printed."""
    cfg = tiny_cfg(tiny_models, tmp_path_factory.mktemp("demo") / "out", workers=2)
    capture = pytest.MonkeyPatch()
    printed = []
    capture.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    try:
        result = run_demo(cfg)
    finally:
        capture.undo()
    return cfg, result, "\n".join(printed)


def test_every_stage_writes_its_part(finished):
    cfg, result, _ = finished
    real, synthetic = load_manifest(cfg.out / "real-digits"), load_manifest(cfg.out / "synthetic")
    assert (real.splits["train"].count, real.splits["test"].count) == (1258, 539)  # 70/30 of 1,797
    assert (synthetic.splits["train"].count, synthetic.splits["test"].count) == (256, 64)
    assert synthetic.class_names == CLASS_NAMES
    assert [s["name"].split(" ")[0] for s in result["stages"]] == [
        "models",
        "real",
        "synthetic",
        "generator",
        "bootstrap:",
    ]
    saved = json.loads((cfg.out / "demo.json").read_text())
    assert saved["headline"] == json.loads(json.dumps(result["headline"]))


def test_workers_write_the_same_bytes_as_one_process(finished, tiny_models, tmp_path):
    cfg, _, _ = finished
    single = pipeline.generate_synthetic(
        dataclasses.replace(cfg, out_dir=str(tmp_path), workers=1),
        {"ddpm": tiny_models / "digits-ddpm", "labeler": tiny_models / "digits-labeler"},
    )
    ours, theirs = load_manifest(cfg.out / "synthetic"), load_manifest(single)
    assert [s.sha256 for s in ours.splits["train"].shards] == [s.sha256 for s in theirs.splits["train"].shards]
    assert ours.splits["test"].label_histogram == theirs.splits["test"].label_histogram


def test_bootstrap_uses_the_synthetic_pool_and_the_real_holdout(finished):
    cfg, result, _ = finished
    exp = cfg.out / "bootstrap"
    real_cfg = json.loads((exp / "seed0" / "real" / "config.json").read_text())
    ideal = json.loads((exp / "seed1" / "ideal" / "summary.json").read_text())
    assert real_cfg["data"] == str(cfg.out / "synthetic") and real_cfg["n"] == 64
    assert real_cfg["extra_test"] == [f"real-digits={cfg.out / 'real-digits'}"]
    assert ideal["ledger"]["no_reuse"] and ideal["ledger"]["total_draws"] == 8 * 16
    headline = result["headline"]
    assert set(headline["extra"]) == {"real-digits"}
    assert headline["steps"] == 8 and headline["n"] == 64 and headline["seeds"] == 2


def test_report_states_generator_quality_and_headline(finished):
    cfg, result, printed = finished
    report = (cfg.out / "bootstrap" / "report.md").read_text()
    quality = json.loads((cfg.out / "quality.json").read_text())
    lab = quality["labeler_holdout"]
    assert lab["count"] == 539 and 0 <= lab["accuracy"] <= 1
    assert "## The generator: how close are the synthetic digits to real ones?" in report
    assert f"{100 * lab['accuracy']:.2f}% ({lab['errors']} wrong of 539" in report
    row = quality["synthetic_vs_real"]["rows"][0]
    assert row["n"] == 100
    assert (
        f"| 100 | {100 * row['synthetic_to_real_accuracy']:.2f}% | {100 * row['real_to_real_accuracy']:.2f}% |"
        in report
    )
    assert "## Real vs Ideal on each test set" in report and "| real-digits | soft-error |" in report
    assert "## What this miniature can and cannot show" in report
    assert "a margin declared in the demo's config before the run (20% of the generalisation gap" in report
    assert "| label filter | none: every generated digit is in the pool |" in report
    # the regime check: the share of generated digits the labeler is unsure of, as the samples record it
    synthetic = cfg.out / "synthetic"
    shards = [synthetic / s.file for split in load_manifest(synthetic).splits.values() for s in split.shards]
    unsure = sum(meta["max_prob"] < 0.9 for _, _, _, meta in iter_samples(shards, decode=False)) / (256 + 64)
    assert quality["synthetic_labels"]["unsure_fraction"] == pytest.approx(unsure)
    assert f"| synthetic digits with labeler top probability < 0.9 | {100 * unsure:.2f}% |" in report
    # the power of the design, from the sd and margin the report's inference used
    soft = json.loads((cfg.out / "bootstrap" / "results.json").read_text())["statistics"]["test"]["soft_error"]
    assert result["power"] == power_sentence(soft) and result["power"] in report
    # the console summary: where the report is, and its figures
    assert f"report: {cfg.out / 'bootstrap' / 'report.md'}" in printed
    assert "demo finished in" in printed and "real-digits soft-error at" in printed
    assert "labeler accuracy on the real holdout" in printed and "n=100:" in printed


def test_rerun_reuses_shards_and_finished_runs(finished):
    cfg, result, _ = finished
    files = sorted((cfg.out / "synthetic" / "data").glob("*.tar")) + [
        cfg.out / "bootstrap" / f"seed{s}" / w / "summary.json" for s in (0, 1) for w in ("real", "ideal")
    ]
    before = {f: f.stat().st_mtime_ns for f in files}
    again = run_demo(cfg)
    assert {f: f.stat().st_mtime_ns for f in files} == before
    assert again["headline"] == result["headline"]


def test_checks_run_before_any_work(tiny_models, tmp_path):
    with pytest.raises(DemoError, match=r"--steps=20 x --batch-size=16 = 320 draws > --train=256"):
        run_demo(tiny_cfg(tiny_models, tmp_path / "out", steps=20))
    with pytest.raises(DemoError, match=r"--n=300: larger than the synthetic train pool"):
        run_demo(tiny_cfg(tiny_models, tmp_path / "out", n=300))
    with pytest.raises(DemoError, match=r"--eval-schedule part 'every:x'"):
        run_demo(tiny_cfg(tiny_models, tmp_path / "out", eval_schedule="every:x"))
    with pytest.raises(DemoError, match=r"--seeds=0: must be >= 1"):
        run_demo(tiny_cfg(tiny_models, tmp_path / "out", seeds=0))
    assert not (tmp_path / "out").exists()
    assert (
        main(["run", "--out", str(tmp_path / "cli-out"), "--train", "1000", "--steps", "10", "--batch-size", "128"])
        == 2
    )
    assert not (tmp_path / "cli-out").exists()


def test_missing_models_are_trained_into_the_output(tiny_models, tmp_path, monkeypatch):
    calls = []

    def fake_train(folder, cfg, overwrite=False):
        calls.append(folder)
        for name in ("digits-ddpm", "digits-labeler"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).symlink_to(tiny_models / name)

    monkeypatch.setattr(pipeline, "train_models", fake_train)
    cfg = tiny_cfg(tmp_path / "no-models", tmp_path / "out")
    models = pipeline.resolve_models(cfg)
    assert calls == [tmp_path / "out" / "models"]
    assert models["ddpm"] == tmp_path / "out" / "models" / "digits-ddpm"


def test_quality_section_states_the_difference_plainly():
    quality = {
        "labeler_holdout": {"accuracy": 538 / 539, "count": 539, "errors": 1, "mean_confidence": 0.99},
        "synthetic_labels": {"mean_confidence": 0.94, "train_histogram": [10] * 10},
        "synthetic_vs_real": {
            "classifier": "an SVM",
            "test_set": "real holdout",
            "skipped_sizes": [],
            "rows": [{"n": 1000, "synthetic_to_real_accuracy": 0.95, "real_to_real_accuracy": 0.985}],
        },
    }
    text = generator_markdown(dataclasses.replace(DemoConfig(), train=100, test=10), quality, "out/synthetic")
    assert "| 1,000 | 95.00% | 98.50% | -3.5 points |" in text
    assert "99.81% (1 wrong of 539; mean confidence 0.990)" in text
    assert "is 3.5 points less accurate on real digits than the same classifier trained on real ones" in text


def test_other_settings_or_pool_need_overwrite(tiny_models, tmp_path):
    cfg = tiny_cfg(tiny_models, tmp_path / "out", steps=4)
    run_demo(cfg)
    with pytest.raises(DemoError, match="synthetic: made from other inputs .*changed: settings.*--overwrite"):
        run_demo(dataclasses.replace(cfg, train=240))
    # a regenerated pool in the same folder: the finished runs must not pass for runs on it
    result = run_demo(dataclasses.replace(cfg, train=240, overwrite=True))
    ideal = json.loads((cfg.out / "bootstrap" / "seed0" / "ideal" / "summary.json").read_text())
    assert ideal["ledger"]["pool_size"] == 240 and result["headline"]["steps"] == 4
