"""Reports from hand-written run folders: golden figures (T(n), gaps, means) computed by hand."""

import json
import math

import pytest

from train.errors import TrainError
from train.reporting.bootstrap_report import plan_from_pilot, render_bootstrap
from train.reporting.inference import seeds_needed, seeds_to_detect, tost_power
from train.reporting.margin import Margin
from train.reporting.render import detect_kind, format_headline, render
from train.reporting.results import align, compare_worlds, load_run
from train.reporting.sweep_report import render_sweep
from train.run.summary import RunSummary

STEPS = [0, 10, 20, 40, 80]
# Real: train error reaches <= 1% first at step 40 -> T(n) = 40.
REAL = {
    "test/soft_error": [0.90, 0.60, 0.45, 0.40, 0.42],
    "test/error": [0.90, 0.50, 0.35, 0.30, 0.31],
    "test/loss": [2.30, 1.50, 1.20, 1.10, 1.40],
    "train/soft_error": [0.90, 0.40, 0.10, 0.05, 0.01],
    "train/error": [0.90, 0.30, 0.05, 0.008, 0.0],
    "train/loss": [2.30, 1.00, 0.30, 0.10, 0.02],
    "digits/soft_error": [0.90, 0.70, 0.55, 0.50, 0.52],
    "digits/error": [0.90, 0.60, 0.45, 0.40, 0.41],
    "digits/loss": [2.30, 1.80, 1.50, 1.40, 1.60],
}
IDEAL = {
    "test/soft_error": [0.90, 0.58, 0.42, 0.38, 0.30],
    "test/error": [0.90, 0.49, 0.33, 0.29, 0.22],
    "test/loss": [2.30, 1.45, 1.15, 1.05, 0.80],
    "train/soft_error": [0.90, 0.58, 0.42, 0.38, 0.30],
    "train/error": [0.90, 0.49, 0.33, 0.29, 0.22],
    "train/loss": [2.30, 1.45, 1.15, 1.05, 0.80],
    "digits/soft_error": [0.90, 0.69, 0.54, 0.49, 0.40],
    "digits/error": [0.90, 0.59, 0.44, 0.39, 0.30],
    "digits/loss": [2.30, 1.79, 1.49, 1.39, 1.10],
}
LEDGER_REAL = {
    "unique_samples": 100,
    "total_draws": 800,
    "pool_size": 5000,
    "passes": 8.0,
    "no_reuse": False,
    "within_subset": True,
    "subset_hash": "abc123",
}
LEDGER_IDEAL = {
    "unique_samples": 800,
    "total_draws": 800,
    "pool_size": 5000,
    "passes": 0.16,
    "no_reuse": True,
    "subset_hash": None,
}


def write_run(run_dir, series, steps=STEPS, mode="real", n=100, summary=True, fit_step="auto", **config):
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = {
        "data": "tiny",
        "mode": mode,
        "n": n if mode == "real" else None,
        "steps": steps[-1],
        "batch_size": 10,
        "model": "mcnn",
        "seed": 0,
        "fit_threshold": 0.01,
        "out_dir": str(run_dir),
        **config,
    }
    (run_dir / "config.json").write_text(json.dumps(cfg))
    rows = [{"step": s, "lr": 0.1, **{k: v[i] for k, v in series.items()}} for i, s in enumerate(steps)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary:
        if fit_step == "auto":
            fit_step = next((s for s, e in zip(steps, series["train/error"]) if e <= 0.01), None)
        summ = {
            "mode": mode,
            "n": cfg["n"],
            "steps": steps[-1],
            "steps_done": steps[-1],
            "batch_size": 10,
            "model": "mcnn",
            "fit_threshold": 0.01,
            "fit_step": fit_step,
            "final": rows[-1],
            "ledger": LEDGER_REAL if mode == "real" else LEDGER_IDEAL,
            "img_per_s": 1234.0,
            "wall_s": 5.0,
            "config_hash": f"hash-{mode}",
        }
        (run_dir / "summary.json").write_text(json.dumps(summ))
    return run_dir


def write_bootstrap(exp, real=REAL, ideal=IDEAL, ideal_steps=STEPS, **kw):
    write_run(exp / "real", real, **kw)
    write_run(exp / "ideal", ideal, steps=ideal_steps, mode="ideal", **kw)
    (exp / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "bootstrap",
                "config": {"data": "tiny", "n": 100, "model": "mcnn", "steps": 80, "batch_size": 10, "seed": 0},
                "runs": {"real": "real", "ideal": "ideal"},
            }
        )
    )
    return exp


def test_golden_bootstrap_figures(tmp_path):
    exp = write_bootstrap(tmp_path / "exp")
    cmp = compare_worlds(load_run(exp / "real"), load_run(exp / "ideal"))
    assert cmp["fit_step"] == 40 and cmp["ref_step"] == 40
    soft = cmp["sets"]["test"]["soft_error"]
    # gaps 0, .02, .03, .02, .12: the largest for t <= 40 is .03 at step 20; the .12 at 80 is after T(n)
    assert soft["real_at_fit"] == pytest.approx(0.40)
    assert soft["ideal_at_fit"] == pytest.approx(0.38)
    assert soft["gap_at_fit"] == pytest.approx(0.02)
    assert soft["max_abs_gap"] == pytest.approx(0.03) and soft["max_gap_step"] == 20
    assert soft["gap_end"] == pytest.approx(0.12) and soft["real_end_step"] == 80
    loss = cmp["sets"]["test"]["loss"]
    assert loss["max_abs_gap"] == pytest.approx(0.05) and loss["max_gap_step"] == 10  # .05, .05, .05: first
    digits = cmp["sets"]["digits"]["soft_error"]
    assert digits["gap_at_fit"] == pytest.approx(0.01) and digits["gap_end"] == pytest.approx(0.12)
    gen = cmp["generalisation"]["soft_error"]
    assert gen["real_gap"] == pytest.approx(0.40 - 0.05)
    assert cmp["interpolated"] is False


def test_bootstrap_report_files_and_text(tmp_path):
    exp = write_bootstrap(tmp_path / "exp")
    headline = render(exp)
    assert headline["kind"] == "bootstrap" and headline["fit_step"] == 40 and headline["seeds"] == 1
    # read-out: the evaluations at 20, 40, 80 around T(n) = 40, averaged: Real (.45 + .40 + .42) / 3,
    # Ideal (.42 + .38 + .30) / 3, train soft-error (.10 + .05 + .01) / 3
    assert headline["readout_steps"] == [20, 40, 80] and headline["resolution"] == 20
    assert headline["real_test_soft_error"] == pytest.approx(1.27 / 3)
    assert headline["gap"] == pytest.approx(0.17 / 3) and headline["generalisation_gap"] == pytest.approx(1.11 / 3)
    assert headline["verdict_code"] == "no-verdict"  # one seed: said plainly
    assert headline["extra"]["digits"]["mean"] == pytest.approx((0.01 + 0.01 + 0.12) / 3)
    assert headline["other_gaps"]["error"]["mean"] == pytest.approx((0.02 + 0.01 + 0.09) / 3)
    for name in ("report.md", "soft_error.png", "gap.png", "results.json"):
        assert (exp / name).stat().st_size > 0
    assert (exp / "soft_error.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (exp / "report.md").read_text()
    assert "T(n) = 40" in text and "With one seed no verdict is possible" in text
    assert "one seed gives no confidence bound" in text
    assert (
        "| test | soft-error | 0.4233 | 0.3667 | n/a | n/a (one seed) | n/a | n/a | no-verdict | +0.3700 | "
        "n/a (one seed) |"
    ) in text
    assert "| digits | soft-error |" in text and "| 0 | 40 | +0.0567 | yes | `real` | `ideal` |" in text
    assert "| Real s0 | 100 | 800 | 5,000 | 8.000 | False | True | `abc123` |" in text
    assert "Warning" not in text
    results = json.loads((exp / "results.json").read_text())
    assert results["statistics"]["test"]["soft_error"]["window"] == [10, 40]
    console = format_headline(headline)
    assert str(exp / "report.md") in console and "no-verdict" in console and "digits" in console


def test_sections_are_appended_and_survive_rerendering(tmp_path):
    exp = write_bootstrap(tmp_path / "exp")
    (exp / "sections").mkdir()
    (exp / "sections" / "b.md").write_text("## Second\n\nlater\n")
    (exp / "sections" / "a.md").write_text("## Generator quality\n\nlabeler accuracy 0.99\n")
    render(exp)
    render(exp)
    text = (exp / "report.md").read_text()
    assert text.count("## Generator quality") == 1 and text.index("Generator quality") < text.index("## Second")


def shift_test(series, by):
    return {k: [v + by if k.startswith("test/") else v for v in vals] for k, vals in series.items()}


def write_seeds(exp, offsets):
    """A --seeds K bootstrap by hand: seed s has Real = REAL + offsets[s][0], Ideal = IDEAL + offsets[s][1]."""
    runs = []
    for seed, (real_by, ideal_by) in enumerate(offsets):
        write_run(exp / f"seed{seed}/real", shift_test(REAL, real_by), seed=seed)
        write_run(exp / f"seed{seed}/ideal", shift_test(IDEAL, ideal_by), mode="ideal", seed=seed)
        runs.append({"seed": seed, "real": f"seed{seed}/real", "ideal": f"seed{seed}/ideal"})
    (exp / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "bootstrap",
                "config": {"data": "tiny", "n": 100, "model": "mcnn", "steps": 80, "batch_size": 10, "seed": 0},
                "seeds": len(offsets),
                "runs": runs,
            }
        )
    )
    return exp


def test_three_seed_bootstrap_report(tmp_path):
    # read-out mean over 20, 40, 80 of the one-seed gap is .17 / 3; the offsets add .01, -.01, -.03
    exp = write_seeds(tmp_path / "exp", [(0.01, 0.0), (0.0, 0.01), (-0.01, 0.02)])
    headline = render_bootstrap(exp)
    assert headline["seeds"] == 3 and headline["gap"] == pytest.approx(0.17 / 3 - 0.01)
    assert headline["gap_sd"] == pytest.approx(0.02) and headline["gap_se"] == pytest.approx(0.02 / math.sqrt(3))
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * 0.02 / math.sqrt(3)  # t quantile 97.5%, df 2 (closed form)
    assert (headline["ci_low"], headline["ci_high"]) == pytest.approx((0.14 / 3 - half, 0.14 / 3 + half))
    assert headline["verdict_code"] == "inconclusive"  # p = 0.056
    text = (exp / "report.md").read_text()
    # SE 0.0115: two significant digits (PDG rounding), so three decimals
    assert "seeds 0, 1, 2" in text and "mean +0.047 over 3 seeds (sd 0.020, SE 0.012), 95% CI [-0.003, +0.096]" in text
    assert "this is not evidence that the worlds agree" in text and "Deep Bootstrap claims" not in text
    assert "| test | soft-error | 0.4233 ± 0.0100 | 0.3767 ± 0.0100 | n/a | +0.047 [-0.003, +0.096] | 0.056 |" in text
    assert "| 2 | 40 | +0.027 | yes | `seed2/real` | `seed2/ideal` |" in text
    assert (exp / "soft_error.png").read_bytes()[:4] == (exp / "gap.png").read_bytes()[:4] == b"\x89PNG"


def test_a_report_mixing_devices_and_packing_says_so(tmp_path):
    exp = write_seeds(tmp_path / "exp", [(0.0, 0.0), (0.0, 0.0)])
    for seed, (device, pack) in enumerate([("cpu", 1), ("cuda:0 (NVIDIA H200)", 4)]):
        for world in ("real", "ideal"):
            path = exp / f"seed{seed}/{world}/summary.json"
            path.write_text(
                json.dumps(
                    {**json.loads(path.read_text()), "device": device, "pack_size": pack, "torch_version": "2.14.1"}
                )
            )
    render_bootstrap(exp)
    text = (exp / "report.md").read_text()
    assert "mixes packed and unpacked runs (pack size 1, pack size 4)" in text
    assert "mixes devices (cpu, cuda:0 (NVIDIA H200))" in text and "mixes torch versions" not in text


def test_run_summary_round_trip_keeps_unknown_fields():
    saved = {
        "mode": "real",
        "n": 100,
        "steps": 80,
        "steps_done": 80,
        "batch_size": 10,
        "model": "mcnn",
        "seed": 0,
        "data": "tiny",
        "fit_threshold": 0.01,
        "fit_step": 40,
        "at_fit": None,
        "final": {"step": 80},
        "stopped_at_fit": False,
        "ledger": {},
        "img_per_s": None,
        "wall_s": 1.0,
        "world_size": 1,
        "config_hash": "h",
        "batchnorm": "none",
        "data_identity": "sha256:abc",
    }
    summary = RunSummary.from_dict(
        saved
    )  # written before provenance was recorded: those fields and diverged_by_step are None
    assert summary.device is None and summary.pack_size is None and summary.extra == {"data_identity": "sha256:abc"}
    assert RunSummary.from_dict(summary.to_dict()) == summary
    assert {
        k: v
        for k, v in summary.to_dict().items()
        if k not in ("pack_size", "device", "torch_version", "diverged_by_step")
    } == saved


def test_regime_checks_from_shard_stats_and_extra_test(tmp_path):
    data = tmp_path / "synthetic"
    (data / ".shards").mkdir(parents=True)
    hists = {"train": {17: 10, 19: 90}, "test": {0: 5, 19: 15}}  # 20 bins over [0, 1]: bin 17 is [0.85, 0.9)
    for split, bins in hists.items():
        hist = [bins.get(i, 0) for i in range(20)]
        (data / ".shards" / f"{split}-000000.json").write_text(
            json.dumps({"split": split, "extra": {"max_prob_hist": hist}})
        )
    exp = write_seeds(tmp_path / "exp", [(0.0, 0.0), (0.01, 0.0)])
    spec = json.loads((exp / "experiment.json").read_text())
    (exp / "experiment.json").write_text(json.dumps({**spec, "config": {**spec["config"], "data": str(data)}}))
    render_bootstrap(exp)
    regime = json.loads((exp / "results.json").read_text())["regime"]
    assert regime["low_confidence"] == {"train": pytest.approx(0.1), "test": pytest.approx(0.25)}
    # Real test error at the read-out (.35 + .30 + .31) / 3 = .32, +.01 on seed 1, vs digits (.45 + .40 + .41) / 3
    assert regime["error_ratio"] == {"digits": pytest.approx((0.32 + 0.005) / 0.42)}
    text = (exp / "report.md").read_text()
    assert "the labeler's top probability is below 0.9 on 25.0% of the test images" in text


def test_plan_from_a_pilot(tmp_path):
    exp = write_seeds(tmp_path / "exp", [(0.01, 0.0), (0.0, 0.01), (-0.01, 0.02)])
    plan = plan_from_pilot(exp, Margin.parse("0.01"))
    # paired gaps sd .02 (see test_three_seed_bootstrap_report), mean .14 / 3
    assert plan.sd_of_gaps == pytest.approx(0.02) and plan.margin == 0.01
    assert plan.seeds_for_equivalence == seeds_needed(0.02, 0.01)
    assert plan.seeds_for_observed_gap == seeds_to_detect(0.02, 0.14 / 3) and plan.test_examples is None
    assert plan.power_now == pytest.approx(tost_power(0.02, 0.01, 3))
    assert f"its 3 seeds had {plan.power_now:.0%} power" in plan.describe()
    assert "the pilot kept no per-example test outputs" in plan.describe()
    render_bootstrap(exp)  # the report plans for the experiment's own margin (the default 20%)
    assert plan_from_pilot(exp, Margin.parse("20%")).describe() in (exp / "report.md").read_text()
    saved = json.loads((exp / "results.json").read_text())["plan"]
    assert saved["power_now"] == pytest.approx(plan_from_pilot(exp, Margin.parse("20%")).power_now)


def test_sweep_and_bootstrap_judge_alike(tmp_path):
    offsets = [(0.01, 0.0), (0.0, 0.01), (-0.01, 0.02)]
    boot = render_bootstrap(write_seeds(tmp_path / "boot", offsets))
    sweep_dir = write_seeds(tmp_path / "sweep", offsets)
    runs = [
        {"model": "mcnn", "lr": 0.1, "n": 100, "seed": s, "real": f"seed{s}/real", "ideal": f"seed{s}/ideal"}
        for s in range(3)
    ]
    (sweep_dir / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "sweep",
                "config": {"data": "tiny", "steps": 80, "batch_size": 10, "lr": 0.1},
                "models": ["mcnn"],
                "ns": [100],
                "lrs": [0.1],
                "seeds": [0, 1, 2],
                "runs": runs,
            }
        )
    )
    group = render_sweep(sweep_dir)["groups"][0]
    assert group["verdict"] == boot["verdict_code"] == "inconclusive"  # one cell: Holm changes nothing
    assert (group["gap"], group["gap_sd"], group["gap_p_value"], group["gap_p_holm"]) == pytest.approx(
        (boot["gap"], boot["gap_sd"], boot["p_value"], boot["p_value"])
    )


def test_real_never_fits_uses_all_steps(tmp_path):
    real = {**REAL, "train/error": [0.9, 0.5, 0.4, 0.3, 0.2]}
    exp = write_bootstrap(tmp_path / "exp", real=real)
    headline = render(exp)
    assert headline["fit_step"] is None and headline["at"] == "end" and headline["readout_steps"] == [20, 40, 80]
    text = (exp / "report.md").read_text()
    assert "Read at end (no seed's Real World reached the fit threshold, so T(n) is undefined)" in text
    assert "at T(n)" not in text and "read-out at end" in format_headline(headline)


def test_fit_step_from_metrics_when_no_summary(tmp_path):
    run = load_run(write_run(tmp_path / "r", REAL, summary=False))
    assert not run.finished and run.fit_step() == 40
    # the summary is the trainer's record and wins when present
    assert load_run(write_run(tmp_path / "s", REAL, fit_step=20)).fit_step() == 20


def test_interpolates_when_schedules_differ(tmp_path):
    ideal = {k: [v[0], v[2], v[4]] for k, v in IDEAL.items()}  # evaluated at 0, 20, 80 only
    exp = write_bootstrap(tmp_path / "exp", ideal=ideal, ideal_steps=[0, 20, 80])
    aligned = align(load_run(exp / "real"), load_run(exp / "ideal"), "test/soft_error")
    assert list(aligned.steps) == STEPS and aligned.interpolated
    assert aligned.ideal[1] == pytest.approx((0.90 + 0.42) / 2)  # step 10, halfway from 0 to 20
    assert aligned.ideal[3] == pytest.approx(0.42 + (0.30 - 0.42) * 20 / 60)  # step 40
    # the report reads the Ideal run on the Real run's steps the same way
    assert render(exp)["ideal_test_soft_error"] == pytest.approx((0.42 + 0.42 + (0.30 - 0.42) * 20 / 60 + 0.30) / 3)


def test_partial_last_line_and_repeated_steps(tmp_path):
    run_dir = write_run(tmp_path / "r", REAL, summary=False)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 40, "test/soft_error": 0.41}) + "\n" + '{"step": 16')
    run = load_run(run_dir)
    assert [r["step"] for r in run.rows] == STEPS
    assert run.series("test/soft_error")[1][3] == pytest.approx(0.41)  # a resumed run's later row wins


def test_config_mismatch_is_warned(tmp_path):
    exp = write_bootstrap(tmp_path / "exp")
    cfg = json.loads((exp / "ideal" / "config.json").read_text())
    (exp / "ideal" / "config.json").write_text(json.dumps({**cfg, "batch_size": 20}))
    render(exp)
    assert "differ beyond mode and folder (batch_size: 10 vs 20)" in (exp / "report.md").read_text()


def test_single_run_report(tmp_path):
    run_dir = write_run(tmp_path / "r", REAL)
    assert detect_kind(run_dir) == "run"
    headline = render(run_dir)
    assert headline["fit_step"] == 40
    assert headline["metrics"]["test/soft_error"] == {"at_fit": pytest.approx(0.40), "end": pytest.approx(0.42)}
    text = (run_dir / "report.md").read_text()
    assert "T(n) = 40" in text and "| digits | soft-error | 0.5000 | 0.5200 |" in text
    assert (run_dir / "soft_error.png").is_file()


def test_single_run_figures_carry_their_sampling_se(tmp_path):
    run_dir = write_run(tmp_path / "r", {**REAL, "test/count": [1000] * 5})
    render(run_dir)
    # soft-error .42 at the end over 1,000 examples: SE sqrt(.42 .58 / 1000) = 0.0156 -> three decimals (PDG)
    assert "| test | soft-error | 0.400 | 0.420 | 0.0156 |" in (run_dir / "report.md").read_text()


def test_detect_kind_errors(tmp_path):
    with pytest.raises(TrainError, match="no such folder"):
        render(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainError, match="neither a run folder"):
        render(tmp_path / "empty")
    write_run(tmp_path / "bare" / "real", REAL)
    write_run(tmp_path / "bare" / "ideal", IDEAL, mode="ideal")
    assert detect_kind(tmp_path / "bare") == "bootstrap"  # no experiment.json: recognised by its folders


def shift(series, by):
    return {k: [v + by if k.startswith("test/") else v for v in vals] for k, vals in series.items()}


def test_sweep_report_golden_means(tmp_path):
    exp = tmp_path / "sweep"
    runs = []
    # Ideal per seed; Real per (n, seed) with a test soft-error offset so the gaps at T(n)=40 are known
    offsets = {(100, 0): 0.01, (100, 1): 0.03, (200, 0): 0.00, (200, 1): -0.02}
    for seed in (0, 1):
        write_run(exp / f"runs/mcnn-s{seed}/ideal", IDEAL, mode="ideal")
        for n in (100, 200):
            real = shift({**IDEAL, "train/error": REAL["train/error"]}, offsets[(n, seed)])
            write_run(exp / f"runs/mcnn-s{seed}/real-n{n}", real, n=n)
            runs.append(
                {
                    "model": "mcnn",
                    "n": n,
                    "seed": seed,
                    "real": f"runs/mcnn-s{seed}/real-n{n}",
                    "ideal": f"runs/mcnn-s{seed}/ideal",
                }
            )
    runs.append(
        {"model": "mcnn", "n": 400, "seed": 0, "real": "runs/mcnn-s0/real-n400", "ideal": "runs/mcnn-s0/ideal"}
    )  # not run yet
    (exp / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "sweep",
                "config": {"data": "tiny", "steps": 80, "batch_size": 10, "lr": 0.1},
                "models": ["mcnn"],
                "ns": [100, 200, 400],
                "seeds": [0, 1],
                "runs": runs,
            }
        )
    )
    headline = render(exp)
    assert headline["runs_total"] == 5 and headline["runs_done"] == 4
    assert headline["mean_abs_gap"] == pytest.approx((0.01 + 0.03 + 0.0 + 0.02) / 4)  # each run at its T(n)
    assert headline["max_abs_gap"] == pytest.approx(0.03)
    assert headline["worst"] == {"model": "mcnn", "lr": 0.1, "n": 100, "seed": 1, "gap": pytest.approx(0.03)}
    g100, g200 = headline["groups"]
    assert g100["n"] == 100 and g100["lr"] == 0.1 and g100["gap"] == pytest.approx(0.02)
    ideal = (0.42 + 0.38 + 0.30) / 3  # read-out: the mean of steps 20, 40, 80
    assert g100["real"] == pytest.approx(ideal + 0.02) and g100["ideal"] == pytest.approx(ideal)
    # gaps .01 and .03 (sd .01414, SE .01, df 1): t = 2, p = 1 - 2 atan(2) / pi = 0.2952; the other cell's
    # gaps 0 and -.02 give the same p, so Holm doubles the smaller: both 0.5903 (max 1)
    p = 1 - 2 * math.atan(2) / math.pi
    assert g100["gap_p_value"] == pytest.approx(p) and g100["gap_p_holm"] == pytest.approx(min(1, 2 * p))
    assert g100["verdict"] == g200["verdict"] == "inconclusive"
    results = json.loads((exp / "results.json").read_text())
    sd = results["groups"][0]["gap"]["sd"]
    assert sd == pytest.approx(math.sqrt(2 * 0.01**2))  # sample sd of .01 and .03
    text = (exp / "report.md").read_text()
    assert "4 of 5 runs finished, in 2 (model, lr, n) cells" in text and "## Not finished" in text
    assert "real-n400" in text
    # rounded to the gap's SE (.01: two significant digits, PDG); CI +-12.706 SE (t quantile, df 1)
    assert (
        "| mcnn | 0.1 | 100 | 2 (2) | 40 ± 0 | 0.387 ± 0.014 | 0.367 ± 0.000 | n/a | +0.020 [-0.107, +0.147] | "
        "0.59 | n/a |"
    ) in text
    assert "with Holm's correction across the cells" in text and "2 inconclusive" in text
    for name in ("scatter.png", "learning_curve.png"):
        assert (exp / name).read_bytes()[:4] == b"\x89PNG"
    assert "L(n)" in format_headline(headline)


def test_sweep_report_with_nothing_finished(tmp_path):
    exp = tmp_path / "sweep"
    exp.mkdir()
    (exp / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "sweep",
                "config": {},
                "models": ["mcnn"],
                "ns": [100],
                "seeds": [0],
                "runs": [{"model": "mcnn", "n": 100, "seed": 0, "real": "a", "ideal": "b"}],
            }
        )
    )
    headline = render_sweep(exp)
    assert headline["runs_done"] == 0
    assert "No run of the grid has finished yet" in (exp / "report.md").read_text()


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("[1, 2]", "row 6 is list [1, 2], not an object"),
        ('{"step": "x", "test/error": 0.1}', "row 6 has step 'x', not an integer >= 0"),
        ('{"step": 90, "test/error": "abc"}', "row 6 has test/error = 'abc', not a number or null"),
    ],
)
def test_report_on_a_metrics_row_that_is_no_row_is_one_line(tmp_path, capsys, bad_line, message):
    from train.__main__ import main

    run_dir = write_run(tmp_path / "r", REAL)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(bad_line + "\n")
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"error: {run_dir / 'metrics.jsonl'}: {message}; restore the file as the run wrote it, or re-run "
        "the run with --overwrite"
    )
