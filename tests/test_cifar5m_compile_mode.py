"""The sampler's torch.compile mode (CUDA graphs on the GPU): the config hash of existing flags is unchanged,
the mode reaches torch.compile, bad modes get one line, and the bytes on the CPU stay those of eager."""

from __future__ import annotations

import json

import pytest
import torch

from cifar5m.cli import main
from cifar5m.config import GenerateConfig
from cifar5m.errors import Cifar5mError
from cifar5m.models import load_unet, read_pipeline
from cifar5m.sample import Sampler
from shards import derive_seed


def _config(**kw) -> GenerateConfig:
    return GenerateConfig(out_dir="out", labeler="local-dir:x", steps=4, **kw).validate()


def test_existing_flags_hash_as_before_and_other_modes_are_part_of_the_hash():
    def compile_entry(cfg):
        return cfg.dataset_config("model", "labeler", "bf16")["generator"]["compile"]

    # exactly the values datasets made before compile modes existed carry (so their hash is unchanged)
    assert compile_entry(_config()) is False and compile_entry(_config(compile=True)) is True
    assert compile_entry(_config(compile=True, compile_mode="reduce-overhead")) == "reduce-overhead"
    assert compile_entry(_config(compile=True, compile_mode="max-autotune")) == "max-autotune"


def test_bad_compile_modes_are_refused_in_one_line():
    with pytest.raises(Cifar5mError, match=r"--compile-mode 'fast': choose one of default, reduce-overhead"):
        _config(compile=True, compile_mode="fast")
    with pytest.raises(Cifar5mError, match="without compile: set compile=True"):
        _config(compile_mode="reduce-overhead")


def test_cli_compile_mode_implies_compile_and_is_printed(tmp_path, tiny_pipeline, tiny_labeler, capsys):
    args = [
        "generate",
        "--model",
        str(tiny_pipeline),
        "--labeler",
        f"local-dir:{tiny_labeler}",
        "--out",
        str(tmp_path / "dry"),
        "--train",
        "10",
        "--test",
        "0",
        "--dry-run",
    ]
    assert main(args + ["--compile-mode", "reduce-overhead"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[: out.rindex("}") + 1])
    assert plan["dataset_config"]["generator"]["compile"] == "reduce-overhead"
    assert plan["run"]["compile"] == "reduce-overhead" and not (tmp_path / "dry").exists()
    assert main(args + ["--compile-mode", "fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --compile-mode 'fast': choose one of default, reduce-overhead") and "\n" not in err


@pytest.mark.parametrize("mode, expected", [("default", None), ("reduce-overhead", "reduce-overhead")])
def test_mode_reaches_torch_compile_and_cpu_bytes_stay_eager(tiny_pipeline, monkeypatch, mode, expected):
    info = read_pipeline(str(tiny_pipeline), tiny_pipeline)
    seeds = [derive_seed(0, "train", i) for i in range(4)]
    eager = Sampler(load_unet(info), info.scheduler_config, "ddpm", 4, "cpu").sample(seeds)
    seen, calls = [], []

    def fake_compile(module, mode=None):  # inductor on this CPU would take a minute per test
        seen.append(mode)
        return lambda *args: calls.append(len(args)) or module(*args)

    monkeypatch.setattr(torch, "compile", fake_compile)
    sampler = Sampler(load_unet(info), info.scheduler_config, "ddpm", 4, "cpu", compile=True, compile_mode=mode)
    assert seen == [expected] and not sampler.cuda_graphs  # CUDA graphs only on a CUDA device
    assert torch.equal(sampler.sample(seeds), eager)
    assert len(calls) == 4  # every one of the 4 DDPM steps ran the compiled UNet, not the eager one
