"""RunConfig, presets, CLI flag resolution, evaluation schedule and learning-rate schedule."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import pytest

from train.__main__ import main
from train.cli.flags import add_run_flags, config_from_args
from train.cli.parser import build_parser
from train.core.config import PRESETS, RunConfig, config_hash, default_seeds, parse_extra_test, validate
from train.core.schedule import lr_at, parse_eval_schedule
from train.errors import TrainError


def _args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    return parser.parse_args(list(flags))


def test_preset_then_explicit_flags_override():
    cfg = config_from_args(_args("--preset", "paper-cifar5m", "--data", "d", "--n", "5000", "--lr", "0.05"))
    assert (cfg.optimizer, cfg.schedule, cfg.momentum, cfg.weight_decay) == ("sgd", "cosine", 0.0, 0.0)
    assert (cfg.batch_size, cfg.steps, cfg.aug, cfg.lr_update_every_steps) == (128, 39_000, "none", 390)
    assert cfg.lr == 0.05  # explicit flag beats the preset's 0.1
    # the paper code's fp32, 10,000 test images, evaluation schedule and augmented train scoring
    assert (cfg.precision, cfg.test_samples, cfg.eval_schedule, cfg.eval_train_aug) == ("fp32", 10_000, "paper", True)
    plain = config_from_args(
        _args("--preset", "paper-cifar5m-aug", "--data", "d", "--precision", "bf16", "--no-eval-train-aug")
    )
    assert (plain.precision, plain.eval_train_aug, plain.aug) == ("bf16", False, "crop-flip")
    assert config_from_args(_args("--preset", "paper-cifar5m-aug", "--data", "d")).aug == "crop-flip"
    dog = config_from_args(_args("--preset", "paper-dogbird", "--data", "d"))
    # train_imgnet.py's defaults: torchvision ResNet-50, centre crop without flip, [0, 1] inputs, fp32,
    # 781 batches with the cosine stepped every 78, evaluated every 32 batches after the update
    assert (dog.model, dog.aug, dog.input_range, dog.precision) == ("resnet50", "none", "unit", "fp32")
    assert (dog.momentum, dog.image_size, dog.steps, dog.lr_update_every_steps) == (0.9, 224, 781, 78)
    assert parse_eval_schedule(dog.eval_schedule, dog.steps)[:4] == [0, 1, 33, 65]
    other = config_from_args(
        _args(
            "--preset",
            "paper-dogbird",
            "--data",
            "d",
            "--aug",
            "rrc-flip",
            "--input-range",
            "signed",
            "--model",
            "timm:resnet50",
        )
    )
    assert (other.aug, other.input_range, other.model) == ("rrc-flip", "signed", "timm:resnet50")


def test_paper_presets_default_to_the_sweeps_ten_seeds(capsys):
    assert [default_seeds(p) for p in ("paper-cifar5m", "paper-dogbird", "bit-hyperrule", None)] == [10, 10, 1, 1]
    assert main(["bootstrap", "--data", "d", "--n", "5", "--preset", "paper-cifar5m", "--out", "o", "--dry-run"]) == 0
    runs = [json.loads(block) for block in capsys.readouterr().out.replace("}\n{", "}\0{").split("\0")]
    assert sorted({r["seed"] for r in runs}) == list(range(10)) and len(runs) == 20
    assert (
        main(
            [
                "bootstrap",
                "--data",
                "d",
                "--n",
                "5",
                "--preset",
                "paper-cifar5m",
                "--seeds",
                "2",
                "--out",
                "o",
                "--dry-run",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count('"mode": "ideal"') == 2


def test_runs_without_a_preset_evaluate_on_the_paper_schedule():
    assert RunConfig().eval_schedule == "paper"


def test_overrides_and_default_out_dir():
    args = _args("--data", "d", "--n", "10", "--extra-test", "a=x/y", "--extra-test", "z", "--mlp-widths", "8,4")
    cfg = config_from_args(args, seed=3)
    assert cfg.out_dir.endswith("real-n10-preact-resnet18-seed3")
    assert cfg.extra_test == ("a=x/y", "z") and cfg.mlp_widths == (8, 4)
    assert config_from_args(args, out_dir="o", mode="ideal").out_dir == "o"


def test_replace_to_ideal_is_valid_and_json_round_trips():
    cfg = RunConfig(data="d", mode="real", n=100, out_dir="o", extra_test=("x",), model="mlp")
    ideal = dataclasses.replace(cfg, mode="ideal", out_dir="o2")
    validate(ideal)
    text = json.dumps(ideal.to_dict())
    assert RunConfig.from_dict(json.loads(text)) == ideal
    # The Ideal World has no n: runs that differ only in n are the same Ideal run.
    assert config_hash(ideal) == config_hash(dataclasses.replace(ideal, n=5000))
    assert config_hash(cfg) != config_hash(dataclasses.replace(cfg, n=5000))
    assert config_hash(cfg) == config_hash(dataclasses.replace(cfg, out_dir="elsewhere", device="cpu"))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model="resnet9000"), "unknown model; known: mcnn, mlp, preact-resnet18, resnet50, vgg11-bn"),
        (dict(mode="half"), "--mode=half: must be one of real, ideal"),
        (dict(n=None), "--n=None: the Real World needs a train-set size"),
        (dict(nesterov=True), "Nesterov needs --optimizer sgd and --momentum > 0"),
        (dict(eval_schedule="log:x"), "--eval-schedule part 'log:x'"),
        (dict(device="tpu"), "--device=tpu: use auto, cpu, cuda or cuda:N"),
        (dict(extra_test=("a=p", "a=q")), "two extra test sets share a name"),
        (dict(pretrained=True), "only timm:NAME models have pretrained weights"),
        (dict(lr=math.inf), "--lr=inf: must be a finite number > 0"),
        (dict(lr=math.nan), "--lr=nan: must be a finite number > 0"),
        (dict(weight_decay=math.inf), "--weight-decay=inf: must be a finite number >= 0"),
        (dict(weight_decay=math.nan), "--weight-decay=nan: must be a finite number >= 0"),
        (dict(mixup_alpha=math.inf), "--mixup-alpha=inf: must be a finite number >= 0"),
        (dict(mixup_alpha=math.nan), "--mixup-alpha=nan: must be a finite number >= 0"),
        (dict(input_range="0,1"), "--input-range=0,1: must be one of signed, unit"),
    ],
)
def test_validate_names_the_flag_and_rule(change, message):
    cfg = dataclasses.replace(RunConfig(data="d", n=10, out_dir="o"), **change)
    with pytest.raises(TrainError) as err:
        validate(cfg)
    assert message in str(err.value)


def test_a_saved_config_is_the_start_and_flags_override_it(tmp_path):
    saved = config_from_args(_args("--preset", "paper-cifar5m", "--data", "d", "--n", "5000", "--out", "o"))
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.replace(saved, data_hashes=("abc",)).to_dict()))
    assert config_from_args(_args("--config", str(tmp_path / "config.json"))) == saved  # the hashes are the run's
    again = config_from_args(_args("--config", str(tmp_path), "--lr", "0.01", "--out", "o2"))  # a run folder
    assert again == dataclasses.replace(saved, lr=0.01, out_dir="o2")
    with pytest.raises(SystemExit):  # one starting point: a preset or a saved config
        _args("--config", str(tmp_path), "--preset", "paper-cifar5m")
    (tmp_path / "config.json").write_text(json.dumps({**saved.to_dict(), "colour": "red"}))
    with pytest.raises(TrainError, match=r"config has unknown fields \['colour'\]"):
        config_from_args(_args("--config", str(tmp_path)))


def test_unknown_preset_lists_known():
    with pytest.raises(TrainError, match="paper-cifar5m") as err:
        config_from_args(argparse.Namespace(preset="nope", data="d"))
    for name in PRESETS:  # the error lists every preset, and each one builds a valid config from the CLI
        assert name in str(err.value)
        validate(config_from_args(_args("--preset", name, "--data", "d", "--n", "10")))


def test_extra_test_names():
    assert parse_extra_test("cifar10=/data/c10") == ("cifar10", "/data/c10")
    assert parse_extra_test("/data/cifar10-test/") == ("cifar10-test", "/data/cifar10-test/")
    assert parse_extra_test("https://host/data/c10") == ("c10", "https://host/data/c10")
    assert parse_extra_test("hf://datasets/org/c10")[0] == "c10"
    with pytest.raises(TrainError, match="taken by the run's own sets"):
        parse_extra_test("/data/test")


def test_eval_schedule_log_is_dense_early_and_includes_ends():
    steps = parse_eval_schedule("log:64", 39_000)
    assert steps[0] == 0 and steps[-1] == 39_000
    assert steps[1:6] == [1, 2, 3, 4, 5]
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert max(gaps[:10]) < min(gaps[-10:])
    assert 40 <= len(steps) <= 66


def test_eval_schedule_paper_and_union():
    paper = parse_eval_schedule("paper", 39_000)
    # train.py evaluates batch i after its update (after i + 1 steps) for i every 4 below 1024 (256),
    # every 8 in [1024, 2048) (128), every 64 from 2048 to 38,976 (578); we add step 0 and the end
    assert len(paper) == 256 + 128 + 578 + 2
    assert paper[:4] == [0, 1, 5, 9] and paper[-2:] == [38_977, 39_000]
    assert paper[paper.index(1021) : paper.index(1021) + 3] == [1021, 1025, 1033]
    assert paper[paper.index(2041) : paper.index(2041) + 3] == [2041, 2049, 2113]
    assert parse_eval_schedule("after:32", 100) == [0, 1, 33, 65, 97, 100]
    assert parse_eval_schedule("every:10+steps:3,7", 25) == [0, 3, 7, 10, 20, 25]
    with pytest.raises(TrainError, match="within 0..25"):
        parse_eval_schedule("steps:30", 25)


@pytest.mark.parametrize(
    "spec, steps, message",
    [
        ("log:2000000000", 39_000, "--eval-schedule part 'log:2000000000': use paper, log:POINTS (at most 100,000)"),
        ("every:1", 2_000_000_000, "--eval-schedule every:1 over 2,000,000,000 steps: up to 2,000,000,001 evaluations"),
        ("paper", 2_000_000_000, "--eval-schedule paper over 2,000,000,000 steps: up to 31,250,512 evaluations"),
    ],
)
def test_unbounded_eval_schedules_are_refused_at_once(spec, steps, message):
    start = time.perf_counter()
    with pytest.raises(TrainError, match="more than 100,000|at most 100,000") as err:
        parse_eval_schedule(spec, steps)
    assert message in str(err.value) and time.perf_counter() - start < 0.5


def test_dry_run_of_a_huge_schedule_answers_with_one_line(capsys):
    start = time.perf_counter()
    code = main(
        [
            "run",
            "--data",
            "d",
            "--n",
            "5",
            "--steps",
            "2000000000",
            "--eval-schedule",
            "every:1",
            "--out",
            "o",
            "--dry-run",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --eval-schedule every:1 over 2,000,000,000 steps")
    assert err.count("\n") == 1 and time.perf_counter() - start < 5


def test_lr_cosine_stepped_like_the_paper_code():
    cfg = RunConfig(lr=0.1, steps=39_000, schedule="cosine", lr_update_every_steps=390)
    # CosineAnnealingLR(T_max=100) stepped every 390 batches
    for step in (0, 389, 390, 19_500, 38_999):
        expected = 0.1 * 0.5 * (1 + math.cos(math.pi * (step // 390) / 100))
        assert lr_at(cfg, step) == pytest.approx(expected)
    assert lr_at(cfg, 0) == lr_at(cfg, 389) == 0.1


def test_lr_step_constant_warmup():
    step_cfg = RunConfig(lr=1.0, steps=100, schedule="step", lr_milestones=(0.5, 0.75), lr_gamma=0.1)
    assert [lr_at(step_cfg, s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = RunConfig(lr=1.0, steps=100, schedule="constant", warmup_steps=4)
    assert [lr_at(warm, s) for s in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1])


def test_cli_parser_has_run_and_help():
    parser = build_parser()
    args = parser.parse_args(["run", "--data", "d", "--n", "3", "--dry-run"])
    assert args.func.__name__ == "cmd_run" and args.dry_run
    assert "--extra-test" in parser._subparsers._group_actions[0].choices["run"].format_help()
