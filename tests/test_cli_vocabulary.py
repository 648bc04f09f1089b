"""One flag vocabulary across the tools' CLIs: the same spelling, aliases, prog and entry points everywhere."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cifar5m.config import GenerateConfig
from dogbird.config import BuildConfig
from shards.errors import ToolkitError
from shards.runtime import resolve_device
from train.core.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CLIS = ["shards", "cifar5m", "dogbird", "train"]


def parser_of(package: str) -> argparse.ArgumentParser:
    return importlib.import_module(f"{package}.cli").build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_help_parsers_are_built_without_importing_torch():
    code = (
        f"import importlib, sys\nfor p in {[*CLIS, 'demo']!r}:\n    importlib.import_module(p + '.cli').build_parser()\n"
        "    assert 'torch' not in sys.modules, p + ' imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_console_scripts_are_each_packages_cli_main():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {name: target for name, target in scripts.items() if name != "deepboot-demo"} == {
        f"deepboot-{p}": f"{p}.cli:main" for p in CLIS
    }
    for p in CLIS:
        assert callable(importlib.import_module(f"{p}.cli").main)


@pytest.mark.parametrize("package", CLIS)
def test_prog_is_the_name_the_user_typed(package, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"/venv/bin/deepboot-{package}", "--help"])
    assert parser_of(package).prog == f"deepboot-{package}"
    monkeypatch.setattr(sys, "argv", [f"/repo/{package}/__main__.py", "--help"])
    assert parser_of(package).prog == f"python -m {package}"


@pytest.mark.parametrize("package", CLIS)
def test_every_cli_takes_log_level_and_every_overwrite_takes_force(package):
    parser = parser_of(package)
    assert "--log-level" in parser.format_help()
    for name, sub in subcommands(parser).items():
        for action in sub._actions:
            if {"--force", "--overwrite"} & set(action.option_strings):
                assert action.option_strings == ["--overwrite", "--force"], f"{package} {name}"
                assert action.dest == "overwrite" and action.default is False, f"{package} {name}"


@pytest.mark.parametrize(
    "argv",
    [
        ["shards", "import", "SRC", "--out", "o"],
        ["cifar5m", "generate", "--out", "o"],
        ["cifar5m", "import-npz", "p.npz", "--out", "o"],
        ["dogbird", "build", "--imagenet", "I", "--out", "o"],
    ],
)
def test_samples_per_shard_with_shard_size_as_its_alias(argv):
    parser = parser_of(argv[0])
    assert parser.parse_args(argv[1:] + ["--samples-per-shard", "7"]).samples_per_shard == 7
    assert parser.parse_args(argv[1:] + ["--shard-size", "7"]).samples_per_shard == 7


def test_ray_takes_an_optional_address_everywhere():
    generate = ["generate", "--out", "o"]
    build = ["build", "--imagenet", "I", "--out", "o"]
    sweep = ["sweep", "--data", "d", "--n", "10"]
    for package, argv in [("cifar5m", generate), ("dogbird", build), ("train", sweep)]:
        parser = parser_of(package)
        assert parser.parse_args(argv).ray is None
        assert parser.parse_args(argv + ["--ray"]).ray == ""
        assert parser.parse_args(argv + ["--ray", "10.0.0.1:6379"]).ray == "10.0.0.1:6379"


def test_log_level_may_follow_the_command():
    parser = parser_of("dogbird")
    assert parser.parse_args(["build", "--imagenet", "I", "--out", "o"]).log_level == "INFO"
    assert parser.parse_args(["--log-level", "debug", "build", "--imagenet", "I", "--out", "o"]).log_level == "DEBUG"
    assert (
        parser.parse_args(["build", "--imagenet", "I", "--out", "o", "--log-level", "WARNING"]).log_level == "WARNING"
    )


def test_help_defaults_come_from_the_config_dataclasses():
    generate = subcommands(parser_of("cifar5m"))["generate"].format_help()
    assert f"(default {GenerateConfig.batch_size};" in generate and f"(default {GenerateConfig.train})" in generate
    build = subcommands(parser_of("dogbird"))["build"].format_help()
    assert f"(default {BuildConfig.samples_per_shard})" in build
    run = " ".join(subcommands(parser_of("train"))["run"].format_help().split())
    assert f"optimizer steps (default {RunConfig.steps})" in run
    assert "(default 0.5,0.75)" in run  # a tuple default as it is typed


class AppError(ToolkitError):
    pass


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(AppError, match=r"^--device=cuda:1: no CUDA device here; use --device cpu or auto$"):
        resolve_device("cuda:1", AppError)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(AppError, match=r"--device=cuda:2: only 2 CUDA device\(s\) here \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2", AppError)


def test_each_tool_lists_its_entry_calls_and_imports_without_torch():
    code = (
        "import importlib, sys\n"
        "for p in ['shards', 'cifar5m', 'dogbird', 'train']:\n"
        "    importlib.import_module(p)\n"
        "    assert 'torch' not in sys.modules, p + ' imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    entry_calls = {
        "shards": ["import_dataset", "verify_dataset", "publish", "DatasetWriter"],
        "cifar5m": ["generate_dataset", "GenerateConfig"],
        "dogbird": ["build_dataset", "BuildConfig"],
        "train": ["run_training", "bootstrap", "sweep", "RunConfig"],
    }
    for package, names in entry_calls.items():
        module = importlib.import_module(package)
        assert set(names) <= set(module.__all__), package
        assert all(callable(getattr(module, name)) for name in names), package
        assert [name for name in module.__all__ if not hasattr(module, name)] == [], package
