"""One Real World or Ideal World run, start to finish, into cfg.out_dir.

    from train.run.loop import run_training
    summary = run_training(cfg, resume=False, overwrite=False, progress=True)

1. validate the config; set up the device (and DDP under torchrun);
2. decide: fresh, resume from checkpoints/last.pt, refuse (another config), or return a finished summary;
3. load the data (sampler, batch source, resident evaluation sets);
4. build the model from the init seed (identical in both worlds) and the optimizer; restore a checkpoint;
5. loop: evaluate at scheduled steps, checkpoint, one optimizer step on an augmented batch;
6. final evaluation, global ledger, summary.json.

Every random draw is a function of (seed, step, rank): the sampler's indices, the augmentation generator
and torch's global RNG (dropout) are re-derived each step, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import shards
from shards.runtime import resolve_device
from shards.urls import is_url
from train.core import ddp
from train.core.augment import EvalView, TrainAugment, mixup
from train.core.config import RunConfig, config_hash, parse_extra_test, validate
from train.core.metrics import evaluate
from train.core.models import build_model, zero_head
from train.core.samplers import Ledger, derive_seed
from train.core.schedule import lr_at, parse_eval_schedule
from train.core.stopping import fit_step
from train.data.sources import RunData, build_run_data, resolve_data_path
from train.errors import TrainError
from train.run import runfolder, test_outputs
from train.run.summary import RunSummary, device_name

log = logging.getLogger(__name__)


def run_training(cfg: RunConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Run one run into cfg.out_dir and return its summary (also written to summary.json)."""
    cfg, dist, device, start = open_run(cfg, resume, overwrite)
    try:
        if start.kind == "finished":
            log.info("%s: finished already, returning its summary", cfg.out_dir)
            return refuse_diverged(cfg, start.summary)
        return Trainer(cfg, dist, device, progress=progress and dist.is_main).train(resumed=start.kind == "resume")
    finally:
        close_run(cfg, dist)


def refuse_diverged(cfg: RunConfig, summary: dict) -> dict:
    """The summary of a run that ended normally; a diverged run's raises its one-line error every time."""
    step = summary.get("diverged_by_step")
    if step is not None:
        raise TrainError(
            f"{cfg.out_dir}: training diverged (NaN or infinite loss or outputs) by step {step:,}, "
            f"at lr {lr_at(cfg, max(step - 1, 0)):.3g}; its summary.json says so. Lower --lr (now "
            f"{cfg.lr:g}) or check the data, then re-run with --overwrite"
        )
    return summary


def open_run(
    cfg: RunConfig, resume: bool, overwrite: bool
) -> tuple[RunConfig, ddp.Dist, torch.device, runfolder.Start]:
    """Validate, pin the data hashes, set up the device (DDP under torchrun), lock the run folder and decide
    how the run starts; `close_run` frees the folder."""
    validate(cfg)
    cfg = with_data_hashes(cfg)
    dist = ddp.init_distributed(_wants_cuda(cfg.device))
    device = _device(cfg.device, dist)
    cfg = ddp.run_on_main(dist, lambda: resolve_data_path(cfg, device))  # recorded: a resume never switches

    def claim_and_decide() -> runfolder.Start:
        runfolder.claim_run_dir(cfg.out_dir, overwrite)  # before any data loads: in use, foreign, unwritable
        try:
            return runfolder.prepare_run_dir(cfg, resume, overwrite)
        except BaseException:  # refused (another config, ...): free the folder, as close_run would
            runfolder.release_run_dir(cfg.out_dir)
            raise

    start = ddp.run_on_main(dist, claim_and_decide)
    return cfg, dist, device, start


def close_run(cfg: RunConfig, dist: ddp.Dist) -> None:
    """Free the run folder's lock: a long-lived process (a sweep, a Ray worker) goes on to other runs; a
    process that dies frees it by dying."""
    if dist.is_main:
        runfolder.release_run_dir(cfg.out_dir)


def with_data_hashes(cfg: RunConfig) -> RunConfig:
    """Record which datasets the run reads by their content (`Manifest.data_sha256`: every shard's sha256 and
    count), so a dataset rebuilt with other bytes, even under the same config, is another run."""
    if cfg.data_hashes:
        return cfg
    hashes = []
    for location in [cfg.data] + [parse_extra_test(spec)[1] for spec in cfg.extra_test]:
        try:  # a URL's manifest is read where it is; a folder is checked first for the clearer error
            manifest = shards.load_manifest(location if is_url(location) else shards.resolve_dataset(location))
        except shards.ShardsError as exc:
            raise TrainError(str(exc)) from exc
        hashes.append(manifest.data_sha256()[:16])
    return dataclasses.replace(cfg, data_hashes=tuple(hashes))


def _wants_cuda(spec: str) -> bool:
    return spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available())


def _device(spec: str, dist: ddp.Dist) -> torch.device:
    """The run's device; under torchrun a CUDA run uses its local rank's GPU."""
    device = resolve_device(spec, TrainError)
    if device.type != "cuda":
        return device
    if dist.active:
        return torch.device("cuda", dist.local_rank)
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


@dataclass
class _Clock:
    """Wall and training time across sessions (a resumed run continues the counts of its checkpoint)."""

    wall_before: float = 0.0
    train_s: float = 0.0
    session_start: float = field(default_factory=time.perf_counter)
    segment_start: float = field(default_factory=time.perf_counter)
    row_samples: int = 0
    row_train_s: float = 0.0

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.session_start

    def pause(self) -> None:
        self.train_s += time.perf_counter() - self.segment_start

    def go(self) -> None:
        self.segment_start = time.perf_counter()

    def rate(self, samples: int) -> float | None:
        """img/s of training since the last row (None when nothing was trained)."""
        done, took = samples - self.row_samples, self.train_s - self.row_train_s
        self.row_samples, self.row_train_s = samples, self.train_s
        return done / took if done and took > 0 else None


class Trainer:
    """One run's state: data, model, optimizer, ledger, clock. `train()` runs it; benchmarks may pass
    prebuilt `data` and call `train_step` directly; `train.run.packed` drives several through `begin`,
    `record_row`, `_checkpoint` and `_finish` while one packed model trains them all."""

    def __init__(
        self, cfg: RunConfig, dist: ddp.Dist, device: torch.device, *, progress: bool, data: RunData | None = None
    ):
        self.cfg, self.dist, self.device, self.progress = cfg, dist, device, progress
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.data: RunData = data or build_run_data(cfg, dist, device, progress)
        bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        self.model = self._model()
        self.optimizer = self._optimizer()
        self.ledger = self._ledger()
        # A source that crops while decoding (JPEG datasets) brings its own view of the batch.
        self.augment = self.data.augment or TrainAugment(
            cfg.aug, cfg.crop_padding, self.data.image_size, cfg.resize_size
        )
        self.view = EvalView(self.data.image_size)
        self.generator = torch.Generator(device)
        # Whether a training loss was NaN or infinite: kept on the device (no sync per step), read at
        # evaluations and saves, so a diverged run stops before it logs or saves anything more.
        self.bad_loss = torch.zeros((), dtype=torch.bool, device=device)
        self.eval_steps = set(parse_eval_schedule(cfg.eval_schedule, cfg.steps))
        self.rows: list[dict[str, Any]] = []
        self.clock = _Clock()
        self.step = 0
        self.pack_size = 1  # train.run.packed sets the size of the pack this run trains in

    def _model(self) -> torch.nn.Module:
        # Same init seed in both worlds: the Real and Ideal runs of a seed start from one network.
        torch.manual_seed(derive_seed(self.cfg.seed, "init"))
        model = build_model(self.cfg, self.data.num_classes, self.data.in_chans, self.data.image_size)
        if self.cfg.zero_init_head:
            zero_head(model)
        if self.batchnorm_kind(model) == "sync":
            # Under DDP each rank's BatchNorm would see batch / world samples; synced statistics make an
            # 8-GPU run compute what a 1-GPU run does. NCCL only: SyncBatchNorm refuses CPU tensors.
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def batchnorm_kind(self, model: torch.nn.Module) -> str:
        """none (no BatchNorm), single (one process), sync (DDP on CUDA) or per-rank (DDP on CPU)."""
        if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return "none"
        if not self.dist.active:
            return "single"
        return "sync" if self.device.type == "cuda" else "per-rank"

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg, params = self.cfg, self.model.parameters()
        fused: dict[str, Any] = {"fused": True} if self.device.type == "cuda" else {}
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, **fused
            )
        adams = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
        if cfg.optimizer not in adams:
            raise TrainError(f"--optimizer {cfg.optimizer}: must be one of sgd, {', '.join(adams)}")
        return adams[cfg.optimizer](params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)

    def _restore(self) -> None:
        state = runfolder.load_checkpoint(self.cfg.out_dir)
        if state.get("config_hash") != config_hash(self.cfg) or state.get("sampler") != self.data.sampler.state_dict():
            raise TrainError(
                f"{self.cfg.out_dir}: its checkpoint belongs to another config or dataset; pass "
                "--overwrite to start again"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            ledger = state["ledger"].numpy()
            wall_s, train_s = float(state["wall_s"]), float(state["train_s"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            reason = (str(exc).splitlines() or [""])[0][:200]
            raise TrainError(
                f"{self.cfg.out_dir}: its checkpoint does not fit this run's model or optimizer "
                f"({type(exc).__name__}: {reason}); pass --overwrite to start again"
            ) from None
        if self.dist.is_main:  # the checkpoint holds the global ledger; other ranks add from zero
            self.ledger = self._ledger(ledger)
        self.clock = _Clock(
            wall_before=wall_s, train_s=train_s, row_samples=self.step * self.cfg.batch_size, row_train_s=train_s
        )
        # Rank 0 drops the rows after the checkpoint; every rank needs them (T(n), what is logged).
        self.rows = ddp.run_on_main(self.dist, lambda: runfolder.truncate_metrics(self.cfg.out_dir, self.step))
        self._check_rows()
        log.info("resuming %s at step %s", self.cfg.out_dir, f"{self.step:,}")

    def _check_rows(self) -> None:
        """Every evaluation before the checkpoint's step must still be in metrics.jsonl: the loop never
        re-evaluates a past step, so a lost row would silently change T(n). (The row at the checkpoint's
        own step may be lost, to a kill mid-append: it is evaluated again.)"""
        have = {r["step"] for r in self.rows}
        lost = sorted(s for s in self.eval_steps if s < self.step and s not in have)
        if lost:
            raise TrainError(
                f"{self.cfg.out_dir}/{runfolder.METRICS}: the rows of steps {lost[:5]}"
                f"{' ...' if len(lost) > 5 else ''} logged before the checkpoint (step {self.step:,}) "
                "are missing (deleted or edited), so T(n) would be wrong; restore the file, or pass "
                "--overwrite to start again"
            )

    def _global_ledger(self) -> Ledger:
        counts = ddp.all_reduce_sum(torch.from_numpy(self.ledger.counts.copy()), self.dist)
        return self._ledger(counts.numpy())  # every rank checks the sum: draws of other ranks count too

    def _ledger(self, counts=None) -> Ledger:
        """A ledger; the Ideal World's (unless --allow-reuse) ends the run at the first sample drawn twice."""
        once = self.cfg.mode == "ideal" and not self.cfg.allow_reuse
        return Ledger(self.data.sampler.pool_size, counts, once=once)

    def _checkpoint(self) -> None:
        self.stop_if_diverged()
        ledger = self._global_ledger()
        if self.dist.is_main:
            runfolder.save_checkpoint(
                self.cfg.out_dir,
                {
                    "step": self.step,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "sampler": self.data.sampler.state_dict(),
                    "ledger": torch.from_numpy(ledger.counts),
                    "rng": {"scheme": "derive_seed(seed, purpose, step, rank) each step", "seed": self.cfg.seed},
                    "config": self.cfg.to_dict(),
                    "config_hash": config_hash(self.cfg),
                    "wall_s": self.clock.wall(),
                    "train_s": self.clock.train_s,
                },
            )

    def _evaluate(self) -> dict[str, Any]:
        cfg, step = self.cfg, self.step
        samples = step * cfg.batch_size
        row = {
            "step": step,
            "epoch": samples / self.data.sampler.epoch_size,
            "samples_seen": samples,
            "lr": lr_at(cfg, max(step - 1, 0)),
            "wall_s": self.clock.wall(),
            "img_per_s": self.clock.rate(samples),
        }
        ddp.broadcast_buffers(self.model, self.dist)
        sets = [
            ("test", self.data.eval_sets[0].images, self.data.eval_sets[0].labels),
            ("train", *self.data.source.train_eval(step)),
        ]
        sets += [(s.name, s.images, s.labels) for s in self.data.eval_sets[1:]]
        for name, images, labels in sets:
            view = self._train_eval_view(step) if name == "train" else self.view
            # Per-example test outputs let reports count the test set's sampling error; a rank under DDP
            # holds only its share, so they are kept in single-process runs only.
            outputs: list | None = [] if name == "test" and self.dist.world == 1 else None
            result = evaluate(self.model, images, labels, view, cfg.eval_batch_size, self.dist, self.autocast, outputs)
            row.update({f"{name}/{k}": v for k, v in result.items()})
            if outputs:
                test_outputs.save(cfg.out_dir, step, torch.cat(outputs, dim=1).numpy())
        return row

    def _train_eval_view(self, step: int):
        """The train set as the paper code scores it: through the training augmentation (a generator of its
        own, seeded by the step, so resumed runs match), unless --no-eval-train-aug."""
        if not self.cfg.eval_train_aug or self.cfg.aug == "none":
            return self.view
        generator = torch.Generator(self.device)
        generator.manual_seed(derive_seed(self.cfg.seed, "train-eval-aug", step, self.dist.rank))
        return lambda x_u8: self.augment(x_u8, generator)

    def train_step(self, model: torch.nn.Module) -> None:
        """One optimizer step of `model` (the wrapped one) on this step's batch."""
        cfg, step, rank = self.cfg, self.step, self.dist.rank
        lr = lr_at(cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(derive_seed(cfg.seed, "step", step, rank))
        self.generator.manual_seed(derive_seed(cfg.seed, "aug", step, rank))
        images, labels, indices = self.data.source.batch(step)
        self.ledger.record(indices)
        x = self.augment(images, self.generator)
        if cfg.mixup_alpha > 0:
            x, partners, lam = mixup(
                x, labels, cfg.mixup_alpha, derive_seed(cfg.seed, "mixup", step, rank), self.generator
            )
        with self.autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        if cfg.mixup_alpha > 0:
            loss = lam * loss + (1 - lam) * F.cross_entropy(
                logits.float(), partners, label_smoothing=cfg.label_smoothing
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_loss |= ~torch.isfinite(loss.detach())
        loss.backward()
        self.optimizer.step()
        self.step += 1

    def stop_if_diverged(self, row: dict[str, Any] | None = None) -> None:
        """Write a summary that says so and raise, if a training loss (any rank's) or this evaluation's test
        outputs were NaN or infinite: argmax of NaN logits is class 0, a plausible-looking error rate."""
        bad_row = row is not None and row["test/loss"] is None
        if bad_row or ddp.all_reduce_sum(self.bad_loss.double().reshape(1), self.dist).item() > 0:
            refuse_diverged(self.cfg, self._finish(stopped=False, diverged=True))

    def wrapped(self) -> torch.nn.Module:
        """The model to train: DDP under torchrun, compiled when asked."""
        model = self.model
        if self.dist.active:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        return cast(torch.nn.Module, torch.compile(model)) if self.cfg.compile else model

    def _log_row(self, bar) -> bool:
        """Evaluate now, write the row; True when the run should stop here (fitted, --stop-at-fit)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.clock.pause()
        row, stop = self.record_row()
        bar.set_postfix_str(f"img/s {row['img_per_s'] or 0:,.0f} test soft-err {row['test/soft_error']:.4f}")
        self.clock.go()
        return stop

    def record_row(self) -> tuple[dict[str, Any], bool]:
        """Evaluate and write this step's row; also whether the run should stop here (--stop-at-fit)."""
        self.stop_if_diverged()
        row = self._evaluate()
        self.stop_if_diverged(row)
        self.rows.append(row)
        if self.dist.is_main:
            runfolder.append_metrics(self.cfg.out_dir, row)
        return row, self.cfg.stop_at_fit and fit_step(self.rows, self.cfg.fit_threshold) is not None

    def begin(self, resumed: bool) -> None:
        """Restore the checkpoint, or empty the folder and write config.json; then position the data."""
        if resumed:
            self._restore()
        else:
            ddp.run_on_main(self.dist, lambda: runfolder.start_fresh(self.cfg))
        self.data.source.skip_to(self.step)

    def train(self, resumed: bool) -> dict:
        cfg = self.cfg
        self.begin(resumed)
        model = self.wrapped()
        model.train()
        stopped, first = False, self.step
        with tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            desc=f"{cfg.mode} {cfg.model}",
            dynamic_ncols=True,
        ) as bar:
            self.clock.go()
            while True:
                logged = self.rows and self.rows[-1]["step"] == self.step
                if self.step in self.eval_steps and not logged:
                    stopped = self._log_row(bar)
                if stopped or self.step >= cfg.steps:
                    break
                if self.step % cfg.checkpoint_every_steps == 0 and self.step != first:
                    self.clock.pause()
                    self._checkpoint()
                    self.clock.go()
                self.train_step(model)
                bar.update(1)
        self._checkpoint()
        return self._finish(stopped)

    def _finish(self, stopped: bool, diverged: bool = False) -> dict:
        cfg = self.cfg
        fit = fit_step(self.rows, cfg.fit_threshold)
        summary = RunSummary(
            mode=cfg.mode,
            n=cfg.n if cfg.mode == "real" else None,
            steps=cfg.steps,
            steps_done=self.step,
            batch_size=cfg.batch_size,
            model=cfg.model,
            seed=cfg.seed,
            data=cfg.data,
            fit_threshold=cfg.fit_threshold,
            fit_step=fit,
            at_fit=next((r for r in self.rows if r["step"] == fit), None),
            final=self.rows[-1] if self.rows else None,
            stopped_at_fit=stopped,
            diverged_by_step=self.step if diverged else None,
            ledger=self._global_ledger().summary(self.data.sampler.subset, self.data.sampler.subset_hash),
            img_per_s=self.step * cfg.batch_size / self.clock.train_s if self.clock.train_s > 0 else None,
            wall_s=self.clock.wall(),
            world_size=self.dist.world,
            config_hash=config_hash(cfg),
            batchnorm=self.batchnorm_kind(self.model),
            pack_size=self.pack_size,
            device=device_name(self.device),
            torch_version=torch.__version__,
        ).to_dict()
        if self.dist.is_main:
            runfolder.write_summary(cfg.out_dir, summary)
        if self.dist.is_main and not diverged:
            log.info(
                "%s: done at step %s; T(n) = %s; final test error %.4f",
                cfg.out_dir,
                f"{self.step:,}",
                fit,
                summary["final"]["test/error"],
            )
        return summary
