"""`train bootstrap` on a tiny learnable dataset: both worlds, one config, a report that matches the runs."""

import json

import numpy as np
import pytest
import torch
from train_fixtures import build_protos, relabel_dataset, tiny_cfg

from train.__main__ import main
from train.errors import TrainError
from train.experiments.bootstrap import bootstrap
from train.reporting.results import load_run
from train.run import test_outputs


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return build_protos(root / "protos"), build_protos(root / "shifted", seed=0, noise=90.0, train=10)


def test_bootstrap_runs_both_worlds_with_one_config(datasets, tmp_path):
    data, shifted = datasets
    exp = tmp_path / "boot"
    cfg = tiny_cfg(data, exp, extra_test=(f"shifted={shifted}",))
    headline = bootstrap(cfg, progress=False)

    real_cfg = json.loads((exp / "real" / "config.json").read_text())
    ideal_cfg = json.loads((exp / "ideal" / "config.json").read_text())
    differ = {k for k in real_cfg if real_cfg[k] != ideal_cfg[k]}
    assert differ == {"mode", "n", "out_dir"}
    assert (real_cfg["mode"], real_cfg["n"], ideal_cfg["mode"], ideal_cfg["n"]) == ("real", 40, "ideal", None)

    real, ideal = load_run(exp / "real"), load_run(exp / "ideal")
    assert [r["step"] for r in real.rows] == [r["step"] for r in ideal.rows] == list(range(0, 25, 4))
    assert real.rows[0]["test/soft_error"] == pytest.approx(ideal.rows[0]["test/soft_error"])  # same init
    assert real.summary["ledger"]["within_subset"] and ideal.summary["ledger"]["no_reuse"]
    assert (real.summary["pack_size"], real.summary["device"], real.summary["torch_version"]) == (
        1,
        "cpu",
        torch.__version__,
    )  # provenance: trained alone, here

    # the headline is read off the saved runs: the 3 evaluations around T(n), averaged, in both worlds
    fit = real.summary["fit_step"]
    assert fit is not None and headline["fit_step"] == fit  # 40 prototype images are fitted quickly
    steps = [r["step"] for r in real.rows]
    i = min(max(steps.index(fit) - 1, 0), len(steps) - 3)
    assert headline["readout_steps"] == steps[i : i + 3]

    def mean_at(run):
        return np.mean([r["test/soft_error"] for r in run.rows[i : i + 3]])

    assert headline["real_test_soft_error"] == pytest.approx(mean_at(real))
    assert headline["ideal_test_soft_error"] == pytest.approx(mean_at(ideal))
    assert headline["gap"] == pytest.approx(headline["real_test_soft_error"] - headline["ideal_test_soft_error"])
    # the time-averaged gap's window starts after the first epoch, n / batch = 40 / 16
    results = json.loads((exp / "results.json").read_text())
    assert results["statistics"]["test"]["soft_error"]["window"][0] == 2.5
    assert set(headline["extra"]) == {"shifted"}

    spec = json.loads((exp / "experiment.json").read_text())
    assert spec["kind"] == "bootstrap" and spec["runs"] == [{"seed": 0, "real": "real", "ideal": "ideal"}]
    text = (exp / "report.md").read_text()
    assert "| shifted | soft-error |" in text and "| Ideal s0 | 384 | 384 | 400 |" in text
    assert headline["verdict_code"] == "no-verdict" and "With one seed no verdict is possible" in text
    for name in ("soft_error.png", "gap.png", "results.json"):
        assert (exp / name).is_file()

    # re-running skips both finished runs and gives the same figures
    stamps = [(exp / w / "summary.json").stat().st_mtime_ns for w in ("real", "ideal")]
    again = bootstrap(cfg, progress=False)
    assert [(exp / w / "summary.json").stat().st_mtime_ns for w in ("real", "ideal")] == stamps
    assert again == headline


def test_bootstrap_seeds_cli(datasets, tmp_path, capsys):
    data, _ = datasets
    exp = tmp_path / "boot"
    flags = [
        "--data",
        str(data),
        "--n",
        "40",
        "--steps",
        "12",
        "--batch-size",
        "16",
        "--model",
        "mlp",
        "--mlp-widths",
        "32",
        "--eval-schedule",
        "every:4",
        "--eval-train-samples",
        "40",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--out",
        str(exp),
        "--no-progress",
        "--seed",
        "5",
        "--seeds",
        "2",
    ]
    assert main(["bootstrap", *flags, "--margin", "0.05"]) == 0
    spec = json.loads((exp / "experiment.json").read_text())
    assert spec["seeds"] == 2 and [e["real"] for e in spec["runs"]] == ["seed5/real", "seed6/real"]
    assert spec["margin"] == {"value": 0.05, "relative": False}
    # the margin is declared before the run: another margin on the same folder is refused
    assert main(["bootstrap", *flags, "--margin", "10%"]) == 2
    assert "holds another bootstrap experiment" in capsys.readouterr().err
    runs = {f"seed{s}/{w}": load_run(exp / f"seed{s}" / w) for s in (5, 6) for w in ("real", "ideal")}
    assert {r.config["seed"] for r in runs.values()} == {5, 6}
    # each seed's worlds share an init; the two seeds do not
    first = {k: r.rows[0]["test/soft_error"] for k, r in runs.items()}
    assert first["seed5/real"] == pytest.approx(first["seed5/ideal"]) != pytest.approx(first["seed6/real"])
    results = json.loads((exp / "results.json").read_text())
    soft = results["statistics"]["test"]["soft_error"]
    gaps = [runs[f"seed{s}/real"].summary["at_fit"]["test/soft_error"] for s in (5, 6)]
    assert soft["seeds"] == 2 and soft["gap"]["k"] == 2 and len(gaps) == 2
    assert soft["gap"]["ci_low"] <= soft["gap"]["mean"] <= soft["gap"]["ci_high"]
    assert results["headline"]["verdict_code"] != "no-verdict"
    text = (exp / "report.md").read_text()
    assert "seeds 5, 6" in text and "over 2 seeds" in text and "`seed6/ideal`" in text
    # per-example test outputs at every evaluation: their means are the logged test metrics
    real5 = runs["seed5/real"]
    assert test_outputs.saved_steps(real5.run_dir) == [r["step"] for r in real5.rows]
    kept = np.load(real5.run_dir / "test_outputs" / f"step-{real5.rows[-1]['step']:09d}.npy")
    assert kept.dtype == np.float16 and kept.shape == (3, real5.rows[-1]["test/count"])
    for row, key in zip(kept, ("test/error", "test/soft_error", "test/loss")):
        assert row.astype(float).mean() == pytest.approx(real5.rows[-1][key], abs=2e-3)
    assert main(["bootstrap", "--plan", str(exp), "--margin", "0.05"]) == 0  # trains nothing
    out = capsys.readouterr().out
    assert out.startswith("From 2 pilot seeds: sd of the paired gap") and "margin 0.05 (absolute) = ±" in out
    assert f"(this pilot evaluated {real5.rows[-1]['test/count']:,})" in out
    assert main(["bootstrap", "--plan", str(real5.run_dir)]) == 2
    assert "not a bootstrap experiment folder" in capsys.readouterr().err
    low, high = results["headline"]["seed_test_ci"]
    assert low <= results["headline"]["gap"] <= high and "seed and test-set variance components" in text
    with pytest.raises(SystemExit):  # argparse rejects it before anything runs
        main(["bootstrap", *flags[:-1], "0"])
    assert "--seeds: '0': give a number of seeds >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bootstrap", *flags, "--margin", "0"])
    assert "--margin: give an absolute margin > 0" in capsys.readouterr().err


def test_bootstrap_refuses_another_experiment(datasets, tmp_path):
    data, _ = datasets
    exp = tmp_path / "boot"
    exp.mkdir()
    (exp / "experiment.json").write_text(json.dumps({"kind": "bootstrap", "config_hash": "other"}))
    with pytest.raises(TrainError, match="holds another bootstrap experiment"):
        bootstrap(tiny_cfg(data, exp), progress=False)
    assert not (exp / "real").exists()


def test_bootstrap_checks_the_pool_before_training(datasets, tmp_path):
    data, _ = datasets
    exp = tmp_path / "boot"
    with pytest.raises(TrainError, match="exceed the train pool of 400"):
        bootstrap(tiny_cfg(data, exp, steps=30), progress=False)  # 30 x 16 = 480 > 400 Ideal draws
    with pytest.raises(TrainError, match="--n=500: larger than the train pool"):
        bootstrap(tiny_cfg(data, exp, n=500), progress=False)
    assert not exp.exists()


def test_bootstrap_and_report_cli(datasets, tmp_path, capsys):
    data, _ = datasets
    exp = tmp_path / "boot"
    flags = [
        "--data",
        str(data),
        "--n",
        "40",
        "--steps",
        "12",
        "--batch-size",
        "16",
        "--model",
        "mlp",
        "--mlp-widths",
        "32",
        "--eval-schedule",
        "every:4",
        "--eval-train-samples",
        "40",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--out",
        str(exp),
        "--no-progress",
    ]
    assert main(["bootstrap", *flags]) == 0
    out = capsys.readouterr().out
    assert f"report: {exp / 'report.md'}" in out and "test soft-error at" in out
    (exp / "report.md").unlink()
    assert main(["report", str(exp), str(exp / "real")]) == 0
    out = capsys.readouterr().out
    assert (exp / "report.md").is_file() and (exp / "real" / "report.md").is_file()
    assert out.count("report: ") == 2

    assert main(["bootstrap", "--mode", "ideal", *flags]) == 2
    assert "bootstrap runs both worlds" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_bootstrap_dry_run_prints_both_worlds(datasets, tmp_path, capsys):
    data, _ = datasets
    assert (
        main(
            [
                "bootstrap",
                "--data",
                str(data),
                "--n",
                "40",
                "--model",
                "mlp",
                "--dry-run",
                "--out",
                str(tmp_path / "boot"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert '"mode": "real"' in out and '"mode": "ideal"' in out
    assert not (tmp_path / "boot").exists()


def test_a_folder_of_the_users_files_is_refused_and_overwrite_deletes_none(datasets, tmp_path):
    data, _ = datasets
    exp = tmp_path / "mine"
    exp.mkdir()
    (exp / "notes.txt").write_text("my notes")
    with pytest.raises(
        TrainError,
        match=r"--out=.*mine: not empty and not an experiment folder of this toolkit "
        r"\(found notes.txt; no experiment.json\)",
    ):
        bootstrap(tiny_cfg(data, exp, steps=8), progress=False)
    assert [p.name for p in exp.iterdir()] == ["notes.txt"]  # nothing written
    bootstrap(tiny_cfg(data, exp, steps=8), overwrite=True, progress=False)
    assert (exp / "notes.txt").read_text() == "my notes"
    assert (exp / "experiment.json").is_file() and (exp / "real" / "summary.json").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainError, match="exists and is not a folder"):
        bootstrap(tiny_cfg(data, tmp_path / "file", steps=8), progress=False)


def test_a_dataset_rebuilt_with_other_bytes_is_not_given_the_old_results(tmp_path):
    from shards import load_manifest

    data = build_protos(tmp_path / "protos")
    cfg = tiny_cfg(data, tmp_path / "boot")
    bootstrap(cfg, progress=False)
    before = load_manifest(data)
    assert relabel_dataset(data).config_hash == before.config_hash  # other bytes, the same config
    with pytest.raises(TrainError, match="holds a run trained on other data"):
        bootstrap(cfg, progress=False)  # was: the old runs' "finished" results, reported for the new data
    bootstrap(cfg, overwrite=True, progress=False)  # trained anew on the data as it is now
    for world in ("real", "ideal"):
        recorded = json.loads((tmp_path / "boot" / world / "config.json").read_text())["data_hashes"]
        assert recorded == [load_manifest(data).data_sha256()[:16]] != [before.data_sha256()[:16]]
