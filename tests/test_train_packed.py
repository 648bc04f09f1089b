"""Packed training: K runs as one model give each run what it gets trained alone, up to float rounding.

Tolerance: 1e-5 absolute on every metric, weight, BN statistic and momentum buffer after a few steps
(measured max differences ~3e-6: grouped/batched kernels add in another order than single-run ones).
Everything that is not floating-point arithmetic (ledgers, steps, evaluation rows, file formats) is exact.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from train_fixtures import build_dataset, build_protos, run_torchrun, tiny_cfg

from train.__main__ import main
from train.core.config import RunConfig
from train.core.models import build_model
from train.core.packing import PackedSGD, pack_model, packed_input, split_logits, unpack_into
from train.data import sources
from train.errors import TrainError
from train.experiments.bootstrap import bootstrap
from train.experiments.sweep import sweep
from train.run import packed as packed_mod
from train.run import runfolder
from train.run.loop import run_training
from train.run.packed import plan_packs, run_packed

TOL = 1e-5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("data") / "rgb8", train=400, test=60, size=8, channels=3)


def three_runs(data, out: Path, **kw) -> list[RunConfig]:
    """A pack as a sweep makes one, and more: Real at two n and seeds, Ideal with its own lr."""
    base = tiny_cfg(
        data,
        out,
        model="mcnn",
        width=4,
        steps=8,
        batch_size=16,
        momentum=0.9,
        weight_decay=5e-4,
        nesterov=True,
        eval_schedule="every:4",
        eval_train_samples=32,
        checkpoint_every_steps=4,
    )
    base = dataclasses.replace(base, **kw)
    return [
        dataclasses.replace(base, mode="real", n=40, seed=0, out_dir=str(out / "real-40-s0")),
        dataclasses.replace(base, mode="ideal", n=None, seed=0, lr=0.02, out_dir=str(out / "ideal-s0")),
        dataclasses.replace(base, mode="real", n=80, seed=1, out_dir=str(out / "real-80-s1")),
    ]


def rows_of(folder) -> list[dict]:
    return [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(packed_dir, alone_dir) -> None:
    """Same rows (metrics within TOL, the rest exact), same checkpoint contents, same summary fields."""
    a, b = rows_of(packed_dir), rows_of(alone_dir)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            if key.split("/")[-1] in ("error", "soft_error", "loss"):
                assert ra[key] == pytest.approx(rb[key], abs=TOL), key
            elif key not in ("wall_s", "img_per_s"):
                assert ra[key] == rb[key], key
    ca, cb = (torch.load(Path(d) / "checkpoints" / "last.pt", weights_only=True) for d in (packed_dir, alone_dir))
    assert ca.keys() == cb.keys() and ca["model"].keys() == cb["model"].keys()
    for key, tensor in ca["model"].items():
        torch.testing.assert_close(tensor, cb["model"][key], atol=TOL, rtol=0, msg=key)
    assert ca["optimizer"]["param_groups"] == cb["optimizer"]["param_groups"]
    for i, state in cb["optimizer"]["state"].items():
        torch.testing.assert_close(
            ca["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"], atol=TOL, rtol=0
        )
    assert torch.equal(ca["ledger"], cb["ledger"]) and ca["step"] == cb["step"]
    assert ca["config_hash"] == cb["config_hash"] and ca["sampler"] == cb["sampler"]
    sa, sb = (json.loads((Path(d) / "summary.json").read_text()) for d in (packed_dir, alone_dir))
    assert sa.keys() == sb.keys()
    for key in ("ledger", "steps_done", "fit_step", "config_hash", "mode", "n", "seed", "stopped_at_fit"):
        assert sa[key] == sb[key], key


def train_alone(cfgs: list[RunConfig], tmp_path: Path) -> list[Path]:
    folders = []
    for cfg in cfgs:
        one = dataclasses.replace(cfg, out_dir=str(tmp_path / "alone" / Path(cfg.out_dir).name))
        run_training(one, progress=False)
        folders.append(Path(one.out_dir))
    return folders


@pytest.mark.parametrize(
    "model, aug",
    [("mcnn", "none"), ("mcnn", "crop-flip"), ("preact-resnet18", "none"), ("preact-resnet18", "crop-flip")],
)
def test_packed_runs_equal_runs_trained_alone(dataset, tmp_path, monkeypatch, model, aug):
    cfgs = three_runs(dataset, tmp_path / "packed", model=model, aug=aug, width=8 if model != "mcnn" else 4)
    stores = []
    build = sources.TrainStore.build

    def counted_build(*args, **kwargs):
        stores.append(build(*args, **kwargs))
        return stores[-1]

    monkeypatch.setattr(sources.TrainStore, "build", counted_build)
    summaries = run_packed(cfgs, progress=False)
    assert len(stores) == 1 and stores[0].rows is None  # the Ideal run's pool serves the Real runs too
    monkeypatch.undo()
    assert [s["mode"] for s in summaries] == ["real", "ideal", "real"]
    for cfg, alone in zip(cfgs, train_alone(cfgs, tmp_path)):
        assert_same_run(cfg.out_dir, alone)
        # config.json: the same config as the run alone (its folder aside)
        assert json.loads((Path(cfg.out_dir) / "config.json").read_text()) == {
            **json.loads((alone / "config.json").read_text()),
            "out_dir": cfg.out_dir,
        }
    # finished runs return their summaries without training again
    stamp = (Path(cfgs[0].out_dir) / "summary.json").stat().st_mtime_ns
    assert run_packed(cfgs, progress=False) == summaries
    assert (Path(cfgs[0].out_dir) / "summary.json").stat().st_mtime_ns == stamp


def test_resume_after_a_kill_in_the_middle_of_a_pack(dataset, tmp_path, monkeypatch):
    """Killed while saving the second run's checkpoint at step 8: one run resumes from 8, two from 4."""
    cfgs = three_runs(dataset, tmp_path / "packed", steps=12)
    save = runfolder.save_checkpoint
    saved = []

    def killed_at_second_save_of_step_8(out, state):
        if state["step"] == 8 and len([s for s in saved if s == 8]) == 1:
            raise KeyboardInterrupt
        saved.append(state["step"])
        save(out, state)

    monkeypatch.setattr(runfolder, "save_checkpoint", killed_at_second_save_of_step_8)
    with pytest.raises(KeyboardInterrupt):
        run_packed(cfgs, progress=False)
    monkeypatch.undo()
    steps = [torch.load(Path(c.out_dir) / "checkpoints" / "last.pt", weights_only=True)["step"] for c in cfgs]
    assert sorted(steps) == [4, 4, 8]
    run_packed(cfgs, resume=True, progress=False)  # two packs: one run from step 8, two from step 4
    for cfg, alone in zip(cfgs, train_alone(cfgs, tmp_path)):
        assert_same_run(cfg.out_dir, alone)


def test_a_run_stopping_at_fit_leaves_the_pack(tmp_path):
    data = build_protos(tmp_path / "protos")
    base = tiny_cfg(data, tmp_path / "x", steps=24, stop_at_fit=True)
    cfgs = [
        dataclasses.replace(base, mode="real", n=40, out_dir=str(tmp_path / "p" / "real")),
        dataclasses.replace(base, mode="real", n=40, seed=3, lr=0.001, out_dir=str(tmp_path / "p" / "slow")),
        dataclasses.replace(base, mode="ideal", n=None, out_dir=str(tmp_path / "p" / "ideal")),
    ]
    summaries = run_packed(cfgs, progress=False)
    assert [(s["stopped_at_fit"], s["steps_done"]) for s in summaries] == [(True, 12), (False, 24), (True, 12)]
    for cfg, alone in zip(cfgs, train_alone(cfgs, tmp_path)):
        assert_same_run(cfg.out_dir, alone)


def test_packed_model_and_sgd_match_each_run_and_torch_sgd():
    cfgs = [
        RunConfig(model=name, width=8, mlp_widths=(8, 8)) for name in ("mcnn", "preact-resnet18", "mlp", "vgg11-bn")
    ]
    for cfg in cfgs:
        models = []
        for seed in range(3):
            torch.manual_seed(seed)
            models.append(build_model(cfg, 10, 3, 8))
        packed = pack_model(models)
        xs = [torch.randn(5, 3, 8, 8) for _ in models]
        per_run = split_logits(packed(packed_input(xs)), 3)
        for model, x, logits in zip(models, xs, per_run):
            torch.testing.assert_close(logits, model(x), atol=TOL, rtol=0)
        # one SGD step with momentum, Nesterov and weight decay, each run at its own lr
        lrs = [0.1, 0.02, 0.3]
        opts = [
            torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3, nesterov=True)
            for m, lr in zip(models, lrs)
        ]
        sgd = PackedSGD(packed, 3, momentum=0.9, weight_decay=1e-3, nesterov=True)
        for _ in range(2):
            for model, x, opt in zip(models, xs, opts):
                opt.zero_grad()
                model(x).square().mean().backward()
                opt.step()
            sgd.zero_grad()
            split_logits(packed(packed_input(xs)), 3).square().mean(dim=(1, 2)).sum().backward()
            sgd.step(torch.tensor(lrs))
        copies = [build_model(cfg, 10, 3, 8) for _ in models]
        unpack_into(packed, copies)
        for model, copy in zip(models, copies):
            for (name, a), b in zip(model.state_dict().items(), copy.state_dict().values()):
                torch.testing.assert_close(b, a, atol=TOL, rtol=0, msg=f"{cfg.model} {name}")


def test_runs_that_cannot_share_a_model_are_refused(dataset, tmp_path):
    real, ideal, _ = three_runs(dataset, tmp_path)
    with pytest.raises(TrainError, match="these runs cannot train as one packed model"):
        run_packed([real, dataclasses.replace(ideal, batch_size=8)], progress=False)
    assert not Path(real.out_dir).exists()


def test_packed_model_follows_the_runs_placement():
    models = [build_model(RunConfig(model="mcnn", width=2), 10, 1, 8).double() for _ in range(2)]
    packed = pack_model(models)
    assert {p.dtype for p in packed.parameters()} == {torch.float64}
    xs = [torch.randn(3, 1, 8, 8, dtype=torch.float64) for _ in models]
    for model, x, logits in zip(models, xs, split_logits(packed(packed_input(xs)), 2)):
        torch.testing.assert_close(logits, model(x))


def test_unpackable_layers_are_named():
    with pytest.raises(TrainError, match=r"model\.1: cannot pack a LayerNorm layer; train this model with --pack 1"):
        pack_model([nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))])


def test_plan_packs_groups_compatible_runs(tmp_path):
    base = RunConfig(data="d", model="mcnn", device="cpu", out_dir=str(tmp_path))
    runs = [
        dataclasses.replace(base, seed=s, mode=m, n=None if m == "ideal" else 10, out_dir=f"{m}{s}")
        for s in range(3)
        for m in ("real", "ideal")
    ]
    runs += [
        dataclasses.replace(base, model="timm:resnet18", out_dir="timm"),
        dataclasses.replace(base, optimizer="adam", out_dir="adam"),
        dataclasses.replace(base, model="preact-resnet18", out_dir="resnet"),
    ]
    names = [[c.out_dir for c in group] for group in plan_packs(runs, pack=4)]
    assert names == [["real0", "ideal0", "real1", "ideal1"], ["real2", "ideal2"], ["timm"], ["adam"], ["resnet"]]
    assert all(len(group) == 1 for group in plan_packs(runs, pack=1))
    assert len(plan_packs(runs, pack=None)) == len(runs)  # CPU default: one at a time (bench/RESULTS.md)


def test_bootstrap_packs_both_worlds(tmp_path):
    data = build_protos(tmp_path / "protos")
    packed = bootstrap(tiny_cfg(data, tmp_path / "packed"), progress=False, pack=2)
    alone = bootstrap(tiny_cfg(data, tmp_path / "alone"), progress=False, pack=1)
    for world in ("real", "ideal"):
        assert_same_run(tmp_path / "packed" / world, tmp_path / "alone" / world)
    assert packed.keys() == alone.keys() and packed["fit_step"] == alone["fit_step"]


def test_sweep_cli_with_pack(tmp_path, capsys, monkeypatch):
    data = build_protos(tmp_path / "protos")
    out = tmp_path / "sweep"
    flags = [
        "--data",
        str(data),
        "--n",
        "40,80",
        "--seeds",
        "2",
        "--steps",
        "8",
        "--batch-size",
        "16",
        "--model",
        "mlp",
        "--mlp-widths",
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
        str(out),
        "--no-progress",
    ]
    packs = []
    train = packed_mod.PackedTrainer.train

    def counted(self):
        packs.append(len(self.lanes))
        return train(self)

    monkeypatch.setattr(packed_mod.PackedTrainer, "train", counted)
    assert main(["sweep", *flags, "--pack", "4"]) == 0
    assert packs == [4, 2]  # 6 runs (2 seeds x (Ideal + 2 n)) in packs of 4 and 2
    assert "report: " in capsys.readouterr().out
    spec = json.loads((out / "experiment.json").read_text())
    for entry in spec["runs"]:
        for world in ("real", "ideal"):
            assert runfolder.is_finished(out / entry[world])
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", *flags, "--pack", "0"])
    assert exit_.value.code == 2
    assert "'0': give the number of runs to train as one model, >= 1" in capsys.readouterr().err


DDP_SCRIPT = """
import dataclasses, torch
torch.set_num_threads(1)
from train.core.config import RunConfig
from train.run.loop import run_training
from train.run.packed import run_packed
cfgs = [RunConfig.from_dict(kw) for kw in {configs}]
run_packed(cfgs, progress=False)
for cfg in cfgs:
    run_training(dataclasses.replace(cfg, out_dir=cfg.out_dir.replace("packed", "alone")), progress=False)
"""


@pytest.mark.slow
def test_packed_runs_under_two_gloo_ranks_equal_runs_alone(dataset, tmp_path):
    """torchrun, 2 ranks: each rank's slice of every run's batch, gradients averaged over ranks."""
    cfgs = three_runs(dataset, tmp_path / "packed", model="mcnn", aug="crop-flip")
    script = tmp_path / "ddp_pack.py"
    script.write_text(DDP_SCRIPT.format(configs=[c.to_dict() for c in cfgs]))
    run_torchrun(script, tmp_path)
    for cfg in cfgs:
        summary = json.loads((Path(cfg.out_dir) / "summary.json").read_text())
        assert summary["world_size"] == 2 and summary["steps_done"] == 8
        assert_same_run(cfg.out_dir, cfg.out_dir.replace("packed", "alone"))


@pytest.mark.slow
def test_sweep_packs_on_ray_equal_local_packs(tmp_path):
    ray = pytest.importorskip("ray")
    data = build_protos(tmp_path / "protos")
    grid = dict(ns=[20, 40], models=["mlp"], seeds=[0, 1], progress=False, pack=3)
    local = sweep(tiny_cfg(data, tmp_path / "local", n=None, steps=8), **grid)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = sweep(tiny_cfg(data, tmp_path / "ray", n=None, steps=8), use_ray=True, **grid)
    finally:
        ray.shutdown()
    assert remote["runs_done"] == local["runs_done"] == 4
    for entry in json.loads((tmp_path / "ray" / "experiment.json").read_text())["runs"]:
        for world in ("real", "ideal"):
            assert_same_run(tmp_path / "ray" / entry[world], tmp_path / "local" / entry[world])
