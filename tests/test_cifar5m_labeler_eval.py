"""`generate --labeler-eval`: the labeler is measured on a real labelled set first; the accuracy lands in the
manifest config and the card, `--min-labeler-accuracy` refuses a weak labeler, a resume reuses the record."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar5m import labeler_eval
from cifar5m.cli import main
from cifar5m.config import CIFAR10_CLASSES
from cifar5m.label import Labeler, create_labeler_model, read_labeler_info
from shards import DatasetWriter, load_manifest

EVAL_IMAGES = 40  # 30 labelled as the labeler predicts, 10 labelled otherwise: accuracy exactly 0.75


def write_eval_set(out, tiny_labeler, class_names=CIFAR10_CLASSES):
    info = read_labeler_info(f"local-dir:{tiny_labeler}", None)
    labeler = Labeler(create_labeler_model(info, 10), "cpu")
    images = np.random.default_rng(0).integers(0, 256, (EVAL_IMAGES, 32, 32, 3), dtype=np.uint8)
    predicted = labeler(torch.from_numpy(images)).argmax(1).numpy()
    labels = [int(p) if i < 30 else int(p + 1) % 10 for i, p in enumerate(predicted)]
    writer = DatasetWriter(out, {"kind": "test-eval"}, list(class_names), {"test": EVAL_IMAGES}, 16)
    writer.prepare()
    for spec in writer.pending():
        writer.write_shard(
            spec,
            ({"image": images[i], "cls": labels[i]} for i in range(spec.first_index, spec.first_index + spec.count)),
        )
    writer.finalize()
    return out, labels


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory, tiny_labeler):
    return write_eval_set(tmp_path_factory.mktemp("eval") / "real", tiny_labeler)


def generate(out, pipeline, labeler, *extra):
    return main(
        [
            "generate",
            "--model",
            str(pipeline),
            "--labeler",
            f"local-dir:{labeler}",
            "--out",
            str(out),
            "--train",
            "8",
            "--test",
            "0",
            "--shard-size",
            "8",
            "--batch-size",
            "8",
            *extra,
        ]
    )


def test_accuracy_is_measured_recorded_and_reused(eval_set, tiny_pipeline, tiny_labeler, tmp_path, monkeypatch):
    real, labels = eval_set
    out = tmp_path / "gen"
    assert generate(out, tiny_pipeline, tiny_labeler, "--labeler-eval", str(real), "--min-labeler-accuracy", "0.7") == 0
    record = load_manifest(out).config["labeler"]["accuracy"]
    assert record["accuracy"] == 0.75 and record["samples"] == EVAL_IMAGES and record["split"] == "test"
    assert record["dataset"] == real.name and len(record["per_class"]) == 10  # the folder's name, not its path
    assert f"75.00% on {real.name} test (40 images)" in (out / "README.md").read_text()
    # A resume must not re-measure (float noise on another device could change the config hash).
    (out / "manifest.json").unlink()
    monkeypatch.setattr(labeler_eval, "measure_accuracy", lambda *a, **k: pytest.fail("measured again"))
    assert generate(out, tiny_pipeline, tiny_labeler, "--labeler-eval", str(real)) == 0
    assert load_manifest(out).config["labeler"]["accuracy"] == record


def test_without_eval_the_record_says_not_measured(tiny_pipeline, tiny_labeler, tmp_path):
    out = tmp_path / "gen"
    assert generate(out, tiny_pipeline, tiny_labeler) == 0
    assert load_manifest(out).config["labeler"]["accuracy"] == "not measured"
    assert "measured before generating: not measured" in (out / "README.md").read_text()


def test_a_labeler_below_the_minimum_is_refused_before_generating(
    eval_set, tiny_pipeline, tiny_labeler, tmp_path, capsys
):
    real, _ = eval_set
    out = tmp_path / "gen"
    assert generate(out, tiny_pipeline, tiny_labeler, "--labeler-eval", str(real), "--min-labeler-accuracy", "0.9") == 2
    err = capsys.readouterr().err
    assert "75.00% on" in err and "below --min-labeler-accuracy 90.00%" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--min-labeler-accuracy", "0.9"], "--min-labeler-accuracy 0.9: needs --labeler-eval DATASET"),
        (["--labeler-eval", "EVAL", "--min-labeler-accuracy", "95"], "a fraction in (0, 1], e.g. 0.95"),
    ],
)
def test_bad_flags_are_one_line_errors(eval_set, tiny_pipeline, tiny_labeler, tmp_path, capsys, args, message):
    args = [str(eval_set[0]) if a == "EVAL" else a for a in args]
    assert generate(tmp_path / "gen", tiny_pipeline, tiny_labeler, *args) == 2
    assert message in capsys.readouterr().err


def test_an_eval_set_with_other_classes_is_refused(tiny_pipeline, tiny_labeler, tmp_path, capsys):
    other, _ = write_eval_set(tmp_path / "other", tiny_labeler, [f"c{i}" for i in range(10)])
    assert generate(tmp_path / "gen", tiny_pipeline, tiny_labeler, "--labeler-eval", str(other)) == 2
    assert "its classes (c0, c1" in capsys.readouterr().err
