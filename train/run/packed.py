"""Many runs as one: K runs of one architecture trained by one packed model in one process.

    summaries = run_packed([cfg_real, cfg_ideal, ...], resume=True)   # one summary per config, in order
    groups = plan_packs(cfgs, pack=8)                                  # which runs train together

Each run keeps everything a run has alone (`train.run.loop.Trainer`, one per run, called a lane): its own
init seed and weights, data stream (Real subset or Ideal order), augmentation generator, ledger, optimizer
state, learning rate, metrics, checkpoints and summary, in a run folder identical in format to an unpacked
run. Shared: the forward/backward (`train.core.packing` stacks the K models into one; a packed SGD applies
each run's own lr) and the data held in memory (one resident pool and evaluation sets per pack, each run
drawing from it with its own sampler). At evaluation and checkpoint steps the packed weights and momentum are
copied back into each lane's own model and optimizer, and the lane evaluates and saves itself exactly as
an unpacked run does; so a run can be resumed packed or alone, and its files cannot tell the difference.

Runs pack together when they may differ only in world, n, seed and lr (`pack_key`); a run that cannot pack
(timm models, Adam/AdamW, streamed Ideal data) trains alone. A run stopping at fit (--stop-at-fit) leaves
the pack, which is re-packed from the others. Resumed runs pack with the runs that stopped at the same
step (a kill between two runs' checkpoints gives two packs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from itertools import groupby
from typing import cast

import torch
from tqdm.auto import tqdm

from train.core import ddp
from train.core.config import RunConfig, identity_dict
from train.core.packing import PackedSGD, pack_model, packed_input, packed_loss, split_logits, unpack_into
from train.core.samplers import IdealSampler, RealSampler, check_pool, derive_seed
from train.core.schedule import lr_at
from train.data.sources import MemorySource, RunData
from train.errors import TrainError
from train.run.loop import Trainer, close_run, open_run, refuse_diverged

log = logging.getLogger(__name__)

PACKABLE_MODELS = ("mcnn", "preact-resnet18", "vgg11-bn", "mlp")
# What the runs of one pack may differ in; everything else (architecture, batch, schedule shape, data
# path, evaluation steps) is shared, so one forward/backward and one step counter serve them all.
_MAY_DIFFER = ("mode", "n", "seed", "lr", "out_dir", "data_hashes")
# Default pack size (--pack unset). CPU: 1, since 8 packed mcnn runs measured 0.77-0.91x as fast as the
# same runs one after another at the demo's size (compute-bound; 1.3-2.3x only for tiny, overhead-bound
# runs: bench/bench_pack.py, bench/RESULTS.md). CUDA: 16, where one batch-128 run leaves the GPU
# launch-bound (bench/gpu_train.py's `packed` part measures it on the device).
DEFAULT_PACK = {"cpu": 1, "cuda": 16}


def pack_key(cfg: RunConfig) -> str | None:
    """Runs with equal keys can train as one packed model; None for a run that must train alone."""
    if cfg.model not in PACKABLE_MODELS or cfg.optimizer != "sgd" or cfg.data_path == "stream":
        return None
    shared = {k: v for k, v in identity_dict(cfg).items() if k not in _MAY_DIFFER}
    shared.update(device=cfg.device, checkpoint_every_steps=cfg.checkpoint_every_steps)
    return json.dumps(shared, sort_keys=True)


def default_pack(cfgs: list[RunConfig]) -> int:
    on_cuda = any(c.device.startswith("cuda") for c in cfgs) or (
        any(c.device == "auto" for c in cfgs) and torch.cuda.is_available()
    )
    return DEFAULT_PACK["cuda" if on_cuda else "cpu"]


def plan_packs(cfgs: list[RunConfig], pack: int | None = None) -> list[list[RunConfig]]:
    """Split runs into packs of at most `pack` runs with one pack_key each (first-seen order kept)."""
    size = pack or default_pack(cfgs)
    groups: dict[str, list[RunConfig]] = {}
    packs: list[list[RunConfig]] = []
    for cfg in cfgs:
        key = pack_key(cfg)
        if key is None or size == 1:
            packs.append([cfg])
            continue
        group = groups.setdefault(key, [])
        if not group:
            packs.append(group)
        group.append(cfg)
        if len(group) == size:
            del groups[key]
    return packs


def run_packed(
    cfgs: list[RunConfig], resume: bool = True, overwrite: bool = False, progress: bool = True
) -> list[dict]:
    """Train `cfgs` (one pack: equal pack_key) together; return their summaries in order.

    Finished runs return their summaries at once; every run folder is checked before any trains.
    """
    keys = {pack_key(cfg) for cfg in cfgs}
    if None in keys or len(keys) != 1:
        raise TrainError(
            f"{', '.join(cfg.out_dir for cfg in cfgs)}: these runs cannot train as one packed model "
            "(they must share model, schedule, batch and data settings, with SGD); group them with "
            "plan_packs or train them with --pack 1"
        )
    opened = []
    try:
        for cfg in cfgs:
            opened.append(open_run(cfg, resume, overwrite))
        summaries: dict[str, dict] = {}
        lanes: list[Trainer] = []
        shared: RunData | None = None
        # Ideal runs first: the first one's resident pool then serves every later run of the pack.
        for cfg, dist, device, start in sorted(opened, key=lambda o: o[0].mode != "ideal"):
            if start.kind == "finished":
                summaries[cfg.out_dir] = refuse_diverged(cfg, start.summary)
                continue
            lane = Trainer(cfg, dist, device, progress=False, data=_shared_data(cfg, dist, shared))
            lane.begin(resumed=start.kind == "resume")
            lanes.append(lane)
            shared = shared or lane.data
        show = progress and all(d.is_main for _, d, _, _ in opened)
        for _, same_step in groupby(sorted(lanes, key=lambda lane: lane.step), key=lambda lane: lane.step):
            group = list(same_step)
            log.info(
                "%d %s runs trained as one packed model from step %s: %s",
                len(group),
                group[0].cfg.model,
                f"{group[0].step:,}",
                ", ".join(lane.cfg.out_dir for lane in group),
            )
            for lane, summary in zip(group, PackedTrainer(group, show).train()):
                summaries[lane.cfg.out_dir] = summary
        return [summaries[cfg.out_dir] for cfg, *_ in opened]
    finally:
        for cfg, dist, *_ in opened:
            close_run(cfg, dist)


def _shared_data(cfg: RunConfig, dist: ddp.Dist, shared: RunData | None) -> RunData | None:
    """A pack-mate's whole resident pool and evaluation sets with this run's own sampler: one copy of the
    data per pack, not per run (a 5M CIFAR pool is 15.4 GB). None: the run loads its own."""
    if shared is None or not isinstance(shared.source, MemorySource) or shared.source.store.rows is not None:
        return None
    pool = shared.sampler.pool_size
    check_pool(cfg.mode, cfg.steps, cfg.batch_size, pool, cfg.allow_reuse)
    sampler = RealSampler(pool, cfg.n, cfg.seed) if cfg.mode == "real" else IdealSampler(pool, cfg.seed)
    source = MemorySource(sampler, shared.source.store, cfg.batch_size, dist, cfg.eval_train_samples)
    return dataclasses.replace(shared, sampler=sampler, source=source)


def _momentum_buffers(lane: Trainer) -> list[torch.Tensor] | None:
    """A lane's SGD momentum buffers in parameter order; None before its first step (or without momentum)."""
    buffers = [lane.optimizer.state.get(p, {}).get("momentum_buffer") for p in lane.model.parameters()]
    return None if any(b is None for b in buffers) else buffers


class PackedTrainer:
    """Lanes at one step, trained as one packed model; `train()` returns their summaries in lane order."""

    def __init__(self, lanes: list[Trainer], progress: bool):
        self.lanes, self.progress = list(lanes), progress
        lead = lanes[0]
        self.cfg, self.dist, self.device, self.autocast = lead.cfg, lead.dist, lead.device, lead.autocast
        self.step = lead.step
        self.summaries: dict[int, dict] = {}
        for lane in self.lanes:
            lane.pack_size = len(self.lanes)
        self._pack()

    def _pack(self) -> None:
        """(Re)build the packed model and optimizer from the lanes' own models and optimizers."""
        cfg = self.cfg
        self.model = pack_model([lane.model for lane in self.lanes])
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = PackedSGD(self.model, len(self.lanes), cfg.momentum, cfg.weight_decay, cfg.nesterov)
        self.optimizer.load_run_buffers([_momentum_buffers(lane) for lane in self.lanes])
        self.wrapped = self.model
        if self.dist.active:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile:
            self.wrapped = cast(torch.nn.Module, torch.compile(self.wrapped))
        self.wrapped.train()

    def _sync_lanes(self) -> None:
        """Copy each run's slice of weights, BN statistics and momentum into its lane (for eval/save)."""
        unpack_into(self.model, [lane.model for lane in self.lanes])
        for k, lane in enumerate(self.lanes):
            buffers = self.optimizer.run_buffers(k)
            if buffers is not None:
                for p, buf in zip(lane.model.parameters(), buffers):
                    lane.optimizer.state[p]["momentum_buffer"] = buf.clone()
            if self.step:  # as after the unpacked path's last step: the lr that step used
                for group in lane.optimizer.param_groups:
                    group["lr"] = lr_at(lane.cfg, self.step - 1)
            lane.step = self.step

    def _clocks(self, go: bool) -> None:
        if not go and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        for lane in self.lanes:
            lane.clock.go() if go else lane.clock.pause()

    def _evaluate(self, bar) -> None:
        """Each lane's row at this step; lanes fitted under --stop-at-fit finish and leave the pack."""
        self._clocks(go=False)
        self._sync_lanes()
        stopped = []
        for lane in self.lanes:
            if lane.rows and lane.rows[-1]["step"] == self.step:
                continue  # resumed at an evaluation step already written
            _, stop = lane.record_row()
            if stop:
                stopped.append(lane)
        bar.set_postfix_str(f"test soft-err {self.lanes[0].rows[-1]['test/soft_error']:.4f} (run 1)")
        for lane in stopped:
            self._finish(lane, stopped=True)
        if stopped:
            self.lanes = [lane for lane in self.lanes if lane not in stopped]
            if self.lanes:
                self._pack()
        self._clocks(go=True)

    def _finish(self, lane: Trainer, stopped: bool) -> None:
        lane._checkpoint()
        self.summaries[id(lane)] = lane._finish(stopped)

    def _checkpoint(self) -> None:
        self._clocks(go=False)
        self._sync_lanes()
        for lane in self.lanes:
            lane._checkpoint()
        self._clocks(go=True)

    def train_step(self) -> None:
        """One step of every lane: its own batch, augmentation and lr; one packed forward/backward."""
        step, rank = self.step, self.dist.rank
        images, labels = [], []
        for lane in self.lanes:
            # The unpacked path also seeds torch's global RNG per step, for dropout; packable models have none.
            lane.generator.manual_seed(derive_seed(lane.cfg.seed, "aug", step, rank))
            x_u8, y, indices = lane.data.source.batch(step)
            lane.ledger.record(indices)
            images.append(lane.augment(x_u8, lane.generator))
            labels.append(y)
        lr = torch.tensor([lr_at(lane.cfg, step) for lane in self.lanes], device=self.device)
        with self.autocast:
            logits = self.wrapped(packed_input(images))
        loss = packed_loss(logits, labels, self.cfg.label_smoothing)
        for lane, lane_logits in zip(self.lanes, split_logits(logits.detach(), len(self.lanes))):
            lane.bad_loss |= ~torch.isfinite(lane_logits).all()  # a lane's loss is finite iff its logits are
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step(lr)
        self.step += 1

    def train(self) -> list[dict]:
        order = list(self.lanes)
        cfg, first = self.cfg, self.step
        eval_steps = order[0].eval_steps
        desc = f"{len(order)} packed {cfg.model} runs"
        with tqdm(
            total=cfg.steps, initial=self.step, disable=not self.progress, unit="step", desc=desc, dynamic_ncols=True
        ) as bar:
            self._clocks(go=True)
            while self.lanes:
                if self.step in eval_steps:
                    self._evaluate(bar)
                if not self.lanes or self.step >= cfg.steps:
                    break
                if self.step % cfg.checkpoint_every_steps == 0 and self.step != first:
                    self._checkpoint()
                self.train_step()
                bar.update(1)
        if self.lanes:
            self._clocks(go=False)
            self._sync_lanes()
            for lane in self.lanes:
                self._finish(lane, stopped=False)
        return [self.summaries[id(lane)] for lane in order]
