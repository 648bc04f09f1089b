"""`train sweep` on a tiny dataset: the grid, one Ideal per (model, seed), resuming, extending, Ray."""

import json

import pytest
from train_fixtures import build_protos, relabel_dataset, tiny_cfg

from train.__main__ import main
from train.errors import TrainError
from train.experiments.sweep import plan_sweep, sweep
from train.reporting.results import load_run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_protos(tmp_path_factory.mktemp("data") / "protos")


def summary_stamps(exp):
    return {p.parent.relative_to(exp).as_posix(): p.stat().st_mtime_ns for p in exp.glob("runs/*/*/summary.json")}


def test_plan_shares_one_ideal_per_model_and_seed(tmp_path):
    base = tiny_cfg("data", tmp_path / "sweep")
    entries, runs = plan_sweep(base, [40, 20, 40], ["mlp", "timm:resnet18"], [0, 1])
    assert len(entries) == 2 * 2 * 2 and len(runs) == 2 * 2 * (1 + 2)
    ideal = [r for r in runs if r.mode == "ideal"]
    assert {(r.model, r.seed, r.n) for r in ideal} == {(m, s, None) for m in ("mlp", "timm:resnet18") for s in (0, 1)}
    assert entries[0] == {
        "model": "mlp",
        "lr": 0.05,
        "n": 20,
        "seed": 0,
        "real": "runs/mlp-lr0.05-s0/real-n20",
        "ideal": "runs/mlp-lr0.05-s0/ideal",
    }
    assert any(r.out_dir.endswith("runs/timm-resnet18-lr0.05-s1/real-n40") for r in runs)
    # every run is the base config with only the grid's fields changed
    for r in runs:
        assert r.steps == base.steps and r.lr == base.lr and r.eval_schedule == base.eval_schedule


def test_sweep_runs_resumes_and_extends(data, tmp_path):
    exp = tmp_path / "sweep"
    base = tiny_cfg(data, exp, n=None)
    headline = sweep(base, ns=[20, 40], models=["mlp"], seeds=[0, 1], progress=False)
    assert headline["runs_total"] == headline["runs_done"] == 4
    assert sorted(summary_stamps(exp)) == [
        "runs/mlp-lr0.05-s0/ideal",
        "runs/mlp-lr0.05-s0/real-n20",
        "runs/mlp-lr0.05-s0/real-n40",
        "runs/mlp-lr0.05-s1/ideal",
        "runs/mlp-lr0.05-s1/real-n20",
        "runs/mlp-lr0.05-s1/real-n40",
    ]
    results = json.loads((exp / "results.json").read_text())
    point = next(p for p in results["points"] if (p["n"], p["seed"]) == (40, 1))
    real, ideal = load_run(exp / "runs/mlp-lr0.05-s1/real-n40"), load_run(exp / "runs/mlp-lr0.05-s1/ideal")
    fit = real.summary["fit_step"]
    ref = fit if fit is not None else real.last_step()
    assert point["fit_step"] == fit
    assert point["real"] == pytest.approx({r["step"]: r for r in real.rows}[ref]["test/soft_error"])
    assert point["ideal"] == pytest.approx({r["step"]: r for r in ideal.rows}[ref]["test/soft_error"])
    for name in ("report.md", "scatter.png", "learning_curve.png"):
        assert (exp / name).is_file()

    # re-running skips every finished run; adding n = 80 trains only the two new Real runs
    before = summary_stamps(exp)
    sweep(base, ns=[20, 40], models=["mlp"], seeds=[0, 1], progress=False)
    assert summary_stamps(exp) == before
    headline = sweep(base, ns=[80], models=["mlp"], seeds=[0, 1], progress=False)
    after = summary_stamps(exp)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == ["runs/mlp-lr0.05-s0/real-n80", "runs/mlp-lr0.05-s1/real-n80"]
    spec = json.loads((exp / "experiment.json").read_text())
    assert spec["ns"] == [20, 40, 80] and len(spec["runs"]) == 6
    assert headline["runs_done"] == 6 and [g["n"] for g in headline["groups"]] == [20, 40, 80]

    # other shared settings: refused rather than mixed into this sweep
    with pytest.raises(TrainError, match="holds another sweep experiment"):
        sweep(tiny_cfg(data, exp, momentum=0.5), ns=[20], models=["mlp"], seeds=[0], progress=False)


def block_run(folder, data):
    """A run folder holding another run's config: the trainer refuses it (a user error)."""
    folder.mkdir(parents=True)
    (folder / ".train-run").write_text("{}")  # the marker: a run folder of ours
    (folder / "config.json").write_text(json.dumps(tiny_cfg(data, folder, n=7, lr=0.3).to_dict()))


def test_failed_run_does_not_stop_the_others(data, tmp_path):
    exp = tmp_path / "sweep"
    block_run(exp / "runs/mlp-lr0.05-s0/real-n20", data)
    with pytest.raises(TrainError, match=r"1 of 3 sweep runs failed \(.*real-n20: .*holds a run with another config"):
        sweep(tiny_cfg(data, exp, n=None, steps=8), ns=[20, 40], models=["mlp"], seeds=[0], progress=False)
    assert (exp / "runs/mlp-lr0.05-s0/real-n40/summary.json").is_file()
    text = (exp / "report.md").read_text()
    assert "1 of 2 runs finished" in text and "## Not finished" in text


def test_sweep_cli_parses_lists(data, tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "--data",
                str(data),
                "--n",
                "20,40",
                "--model",
                "mlp,mcnn",
                "--seeds",
                "2",
                "--seed",
                "5",
                "--steps",
                "8",
                "--out",
                str(tmp_path / "s"),
                "--dry-run",
            ]
        )
        == 0
    )
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(runs) == 2 * 2 * 3
    assert {(r["model"], r["seed"]) for r in runs} == {(m, s) for m in ("mlp", "mcnn") for s in (5, 6)}
    assert sorted({r["n"] for r in runs if r["mode"] == "real"}) == [20, 40]
    assert all(r["steps"] == 8 for r in runs)
    # --lr takes a list: every (model, lr, seed) cell gets its own Ideal run and folder
    assert (
        main(
            [
                "sweep",
                "--data",
                str(data),
                "--n",
                "20",
                "--model",
                "mlp",
                "--lr",
                "0.1,0.05",
                "--seeds",
                "2",
                "--steps",
                "8",
                "--out",
                str(tmp_path / "s"),
                "--dry-run",
            ]
        )
        == 0
    )
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["lr"], r["seed"], r["mode"]) for r in runs) == sorted(
        (lr, s, m) for lr in (0.1, 0.05) for s in (0, 1) for m in ("real", "ideal")
    )
    assert {r["out_dir"].split("/runs/")[1] for r in runs if r["mode"] == "ideal"} == {
        f"mlp-lr{lr}-s{s}/ideal" for lr in ("0.1", "0.05") for s in (0, 1)
    }
    with pytest.raises(SystemExit):
        main(["sweep", "--data", str(data), "--n", "20", "--lr", "0.1,-1"])
    assert "give one or more learning rates > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse rejects it before anything runs
        main(["sweep", "--data", str(data), "--n", "20,x"])
    assert exc.value.code == 2
    assert "give integers separated by commas" in capsys.readouterr().err


def test_sweep_cli_runs_and_prints(data, tmp_path, capsys):
    exp = tmp_path / "s"
    assert (
        main(
            [
                "sweep",
                "--data",
                str(data),
                "--n",
                "40",
                "--model",
                "mlp",
                "--mlp-widths",
                "32",
                "--steps",
                "8",
                "--batch-size",
                "16",
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
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"report: {exp / 'report.md'}" in out and "mlp lr=0.1 n=40" in out


@pytest.mark.slow
def test_sweep_on_ray_matches_local(data, tmp_path):
    ray = pytest.importorskip("ray")
    local = sweep(
        tiny_cfg(data, tmp_path / "local", n=None, steps=8), ns=[20, 40], models=["mlp"], seeds=[0], progress=False
    )
    block_run(tmp_path / "ray/runs/mlp-lr0.05-s0/real-n40", data)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(TrainError, match=r"1 of 3 sweep runs failed \(.*real-n40: .*another config"):
            sweep(
                tiny_cfg(data, tmp_path / "ray", n=None, steps=8),
                ns=[20, 40],
                models=["mlp"],
                seeds=[0],
                use_ray=True,
                progress=False,
            )
        (tmp_path / "ray/runs/mlp-lr0.05-s0/real-n40/config.json").unlink()  # the cause fixed: re-run finishes
        remote = sweep(
            tiny_cfg(data, tmp_path / "ray", n=None, steps=8),
            ns=[20, 40],
            models=["mlp"],
            seeds=[0],
            use_ray=True,
            progress=False,
        )
    finally:
        ray.shutdown()
    assert remote["runs_done"] == local["runs_done"] == 2
    for key in ("mean_abs_gap", "max_abs_gap"):
        assert remote[key] == pytest.approx(local[key], abs=1e-6)
    for ours, theirs in zip(remote["groups"], local["groups"]):
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_runs_over_a_dataset_rebuilt_with_other_bytes_are_refused_not_skipped_as_finished(tmp_path):
    data = build_protos(tmp_path / "protos")
    exp = tmp_path / "sweep"
    cfg = tiny_cfg(data, exp, n=None, steps=8)
    sweep(cfg, ns=[20], models=["mlp"], seeds=[0], progress=False)
    new = relabel_dataset(data)
    with pytest.raises(TrainError, match=r"2 of 2 sweep runs failed \(.*holds a run trained on other data"):
        sweep(cfg, ns=[20], models=["mlp"], seeds=[0], progress=False)
    sweep(cfg, ns=[20], models=["mlp"], seeds=[0], overwrite=True, progress=False)
    for run in ("real-n20", "ideal"):  # trained anew, on the data as it is now
        config = json.loads((exp / "runs/mlp-lr0.05-s0" / run / "config.json").read_text())
        assert config["data_hashes"] == [new.data_sha256()[:16]]
