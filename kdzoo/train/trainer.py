"""The one training loop every strategy runs through.

The trainer knows nothing about any particular strategy: it asks the stack what the models must
output, where batches come from, and which loss terms to add. The teacher is frozen (eval mode,
``requires_grad=False``) and its outputs for the loss always come from a ``no_grad`` pass: they are
constants of the student's loss. (A data-free strategy's generator step back-propagates through the
frozen teacher into its synthetic inputs inside its own ``DataSource.next_batch``, not here.)
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .checkpoint import CHECKPOINT, load_resume_point, resume_point, save_checkpoint
from ..config import OptimConfig, RunConfig
from ..contract.context import RunContext
from ..data import BatchPlan, StreamingPlan, is_random_augmentation
from ..paths import cache_root
from ..contract.errors import Interrupted, NonFiniteLoss
from .gradient_paths import check_gradient_paths
from ..models.evaluate import evaluate, primary_metric
from ..zoo.stack import StrategyStack
from .step import StepModule, freeze, step_info, teacher_outputs
from .teacher_cache import TeacherOutputCache, teacher_input, teacher_memory_format
from .view_store import ViewStore, store_refusal
from ..contract.strategy import Batch, Outputs, StepInfo
from ..contract.errors import ConfigError
from ..progress import steps_progress


def build_optimizer(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD or AdamW; biases and norm weights (1-d tensors) get no weight decay."""
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_schedule(opt: torch.optim.Optimizer, cfg: OptimConfig, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine, step (milestones as fractions of the budget) or constant."""
    milestones = [round(m * total) for m in cfg.milestones]

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            span = max(1, total - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))
        if cfg.schedule == "step":
            return cfg.gamma ** sum(step >= m for m in milestones)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _shard(batch: Batch, rank: int, world: int) -> Batch:
    """This rank's share of the global batch (strided, so labelled/unlabelled mix evenly)."""
    if world == 1:
        return batch
    y = None if batch.y is None else batch.y[rank::world]
    draw = None if batch.draw is None else batch.draw[rank::world]
    return Batch(x=batch.x[rank::world], y=y, labelled=batch.labelled[rank::world], index=batch.index[rank::world],
                 draw=draw)


def _to(batch: Batch, device: torch.device, channels_last: bool) -> Batch:
    if device.type == "cpu" and not channels_last:
        return batch
    x = batch.x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    y = None if batch.y is None else batch.y.to(device, non_blocking=True)
    return Batch(x=x, y=y, labelled=batch.labelled.to(device), index=batch.index, draw=batch.draw)


@dataclass
class TrainResult:
    """What one seed's training produced."""

    best_step: int
    best_val: dict[str, float]
    last_val: dict[str, float]
    best_state: dict[str, torch.Tensor]
    steps: int
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains ``ctx.student`` with ``stack`` for ``ctx.total_steps`` optimiser steps.

    Args:
        ctx: the run context (models, data, budget, run directory).
        stack: the strategy stack.
        plan: the real-data batch plan (in memory or streamed: both give ``plan.batch(step)``), or
            ``None`` when the stack supplies its own data.
        source: the stack's data source (``stack.data_source(ctx)``), if any.
        target_norm: regression target mean/std (metrics are reported in original units).
    """

    def __init__(self, ctx: RunContext, stack: StrategyStack, plan: BatchPlan | StreamingPlan | None,
                 target_norm: tuple[torch.Tensor, torch.Tensor] | None = None, source: Any = None,
                 label: str | None = None) -> None:
        self.ctx, self.stack, self.plan = ctx, stack, plan
        self.label = label or f"{'+'.join(stack.names)} seed {ctx.seed}"  # the progress bar's name for this training
        self.cfg: RunConfig = ctx.config
        self.target_norm = target_norm
        self.needs = stack.needs()
        self.source = source
        if self.source is None and plan is None:
            raise ValueError("no training data: give a batch plan or a strategy with a data source")
        if ctx.teacher is not None:
            freeze(ctx.teacher)
        rt = self.cfg.runtime
        device = ctx.device
        self.amp = rt.amp == "on" or (rt.amp == "auto" and device.type == "cuda")
        self.channels_last = rt.channels_last == "on" or (
            rt.channels_last == "auto" and ctx.student.is_image and _has_conv(ctx.student))
        if self.channels_last:
            ctx.student.to(memory_format=torch.channels_last)
        self.teacher_format = torch.contiguous_format
        if ctx.teacher is not None:  # the teacher's own layout: its outputs never depend on the student's
            self.teacher_format = teacher_memory_format(ctx.teacher, rt.channels_last)
            ctx.teacher.to(memory_format=self.teacher_format)
        self.teacher_dtype = getattr(torch, rt.teacher_dtype)
        if ctx.teacher is not None and self.teacher_dtype != torch.float32:
            ctx.teacher.to(self.teacher_dtype)
        self.step_module = StepModule(ctx.student, stack, ctx.task, self.cfg.optim.label_smoothing)
        check_gradient_paths(self)  # before DDP and compile: a weighted term that trains nothing fails here
        self.dist = distributed.current()
        self.model: nn.Module = self.step_module
        if self.dist.enabled:
            self.model = self._wrap_ddp(rt.sync_bn)
        self.teacher_fn = ctx.teacher.outputs if ctx.teacher is not None else None
        self.teacher_cache, self.view_store, note = self._teacher_source()
        if note and ctx.seed == self.cfg.train.seeds[0]:  # once per run, not once per seed
            ctx.log(note)
        if rt.compile:
            self.model = torch.compile(self.model)
            if ctx.teacher is not None:
                self.teacher_fn = torch.compile(ctx.teacher.outputs)
        params = list(ctx.student.parameters()) + stack.student_optimizer_parameters()
        self.optimizer = build_optimizer(params, self.cfg.optim)
        self.schedule = build_schedule(self.optimizer, self.cfg.optim, ctx.total_steps)
        self.ema = None
        if self.cfg.train.ema is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(ctx.student, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.train.ema), use_buffers=True)
        self.metric, self.higher = primary_metric(ctx.task)
        spe = ctx.steps_per_epoch
        self.eval_every = self.cfg.train.eval_every or max(1, min(spe, math.ceil(ctx.total_steps / 20)))
        self.ckpt_every = self.cfg.train.checkpoint_every or self.eval_every
        self._signal: int | None = None
        self.loggers: list[Any] = []  # experiment trackers (kdzoo.train.loggers), rank 0 only
        # called as hook(step, val) after each validation (kdzoo tune reports to its pruner; raising stops the run)
        self.on_validate: list[Callable[[int, dict[str, float]], None]] = []

    def _teacher_source(self) -> tuple[Any, Any, str | None]:
        """``(teacher-output cache, view store, note)``: where the teacher's outputs come from.

        Deterministic inputs get the teacher-output cache; randomly augmented views (a pure function
        of view seed, draw and sample) get the view store; otherwise the teacher runs live, and the
        note says why in one line.
        """
        ctx, need, rt = self.ctx, self.needs.teacher, self.cfg.runtime
        if rt.teacher_cache != "auto" or ctx.teacher is None or not need.any or self.source is not None:
            return None, None, None
        if ctx.bundle is None or not hasattr(self.plan, "views"):
            return None, None, ("teacher-output cache off: your own DataLoader gives batches without sample indices, "
                                "so the teacher runs on every batch; pass a Dataset instead (with data.augment for "
                                "views) to get the cache or the view store")
        if is_random_augmentation(self.cfg.data):
            note = store_refusal(self.cfg, need, self.source, self.plan, ctx.bundle, self.teacher_dtype)
            return (None, None, note) if note else (None, self._shared(self._view_store), None)
        if not getattr(ctx.bundle.x, "deterministic", True):
            return None, None, ("teacher-output cache off: your own Dataset may augment its items, so the teacher runs "
                                "on every batch (declare `kdzoo_deterministic = True` on it if it does not)")
        if need.features:
            return None, None, None  # intermediate maps are not cached (too large); nothing to explain per run
        if self.teacher_dtype != torch.float32:
            return None, None, None
        return self._shared(self._output_cache), None, None

    def _shared(self, build):
        """Built by rank 0 first (it fills), then by the others (they read what it wrote)."""
        made = build() if self.dist.is_main else None
        distributed.barrier()
        return made if made is not None else build()

    def _output_cache(self):
        ctx = self.ctx
        return TeacherOutputCache(ctx.teacher, ctx.bundle, ctx.splits.train, self.needs.teacher,
                                  cache_root() / "teacher-outputs", self.cfg.data.eval_batch_size, ctx.device, ctx.log,
                                  self.teacher_format)

    def _view_store(self):
        ctx = self.ctx
        return ViewStore(ctx.teacher, self.plan, cache_root() / "views", self.cfg.data.eval_batch_size, ctx.device,
                         ctx.log, self.teacher_format)

    def _wrap_ddp(self, sync_bn: bool) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        if sync_bn:
            self.step_module.student.net = nn.SyncBatchNorm.convert_sync_batchnorm(self.step_module.student.net)
        trained = {id(p) for p in self.ctx.student.parameters()} | {id(p) for p in self.stack.student_optimizer_parameters()}
        ignored = [n for n, p in self.step_module.named_parameters() if id(p) not in trained]
        if ignored:  # e.g. a generator trained by its own optimiser inside the data source
            DDP._set_params_and_buffers_to_ignore_for_model(self.step_module, ignored)
        staged = len(self.stack.stages()) > 1  # a hint stage leaves the head without gradients
        cuda = self.ctx.device.type == "cuda"
        return DDP(self.step_module, device_ids=[self.ctx.device.index] if cuda else None,
                   find_unused_parameters=staged or self.source is not None)

    # -- one step -----------------------------------------------------------------------------------
    def _batch(self, micro_step: int, info: StepInfo) -> Batch:
        if self.source is not None:  # a data source draws this rank's own batch (rank-seeded)
            return _to(self.source.next_batch(info, self.ctx), self.ctx.device, self.channels_last)
        batch = _shard(self.plan.batch(micro_step), self.dist.rank, self.dist.world_size)
        return _to(batch, self.ctx.device, self.channels_last)

    def _teacher_outputs(self, batch: Batch) -> Outputs | None:
        if self.teacher_fn is None or not self.needs.teacher.any:
            return None
        if self.teacher_cache is not None:
            return self.teacher_cache.get(batch.index)
        if self.view_store is not None and batch.draw is not None:
            return self.view_store.get(batch.index, batch.draw, batch.labelled)
        return teacher_outputs(self.teacher_fn, teacher_input(batch.x, self.teacher_format), self.needs.teacher,
                               self.teacher_dtype)

    def train_step(self, step: int) -> dict[str, float]:
        """One optimiser step (``accumulate`` micro-batches); returns the logged terms."""
        ctx, stack = self.ctx, self.stack
        info = step_info(stack, step, ctx.total_steps, ctx.steps_per_epoch)
        accum = self.cfg.optim.accumulate
        self.optimizer.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        for micro in range(accum):
            batch = self._batch(step * accum + micro, info)
            sync = contextlib.nullcontext()
            if self.dist.enabled and micro < accum - 1:
                sync = self.model.no_sync()  # all-reduce once, on the last micro-batch
            with sync, torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=self.amp):
                t_out = self._teacher_outputs(batch)
                total, terms, _ = self.model(batch, t_out, info)
            values = {name: float(value.detach()) for name, (value, _) in terms.items()}
            bad = self._nonfinite(float(total.detach()), values, step)
            if bad:  # skip: no backward and no update; the schedule still follows the step count
                self.schedule.step()
                return {"skipped": 1.0}
            with sync:
                (total / accum).backward()
            for name, value in values.items():
                logged[name] = logged.get(name, 0.0) + value / accum
            logged["loss"] = logged.get("loss", 0.0) + float(total.detach()) / accum
        if self.cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        if self.ema is not None:
            self.ema.update_parameters(ctx.student)
        return logged

    def _nonfinite(self, total: float, values: dict[str, float], step: int) -> bool:
        """Whether this micro-batch's loss is NaN/inf: stop with one line (default) or skip the step.

        Under DDP every rank takes the same decision, so no rank waits in an all-reduce alone.
        """
        bad = not math.isfinite(total)
        if self.dist.enabled:
            bad = distributed.any_rank(bad, self.ctx.device)
        if not bad:
            return False
        if self.cfg.train.nonfinite == "skip":
            self.optimizer.zero_grad(set_to_none=True)
            return True
        culprits = [f"{k!r} is {v}" for k, v in values.items() if not math.isfinite(v)] or [f"total is {total}"]
        # 0-based, as StepInfo.step: the step a strategy's forward saw when it produced the term
        raise NonFiniteLoss(f"step {step} (0-based): loss term {', '.join(culprits)} "
                            f"(strategy {'+'.join(self.stack.names)}); "
                            "check the strategy's parameters and the learning rate, or set train.nonfinite=skip "
                            "to skip such steps")

    # -- evaluation, checkpoints ---------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.ctx.student

    def validate(self) -> dict[str, float]:
        b, s = self.ctx.bundle, self.ctx.splits
        return evaluate(self.eval_model(), b.x, b.y, s.val, self.ctx.task, self.cfg.data.eval_batch_size,
                        self.target_norm, self.ctx.device)

    def _better(self, val: dict[str, float], best: dict[str, float] | None) -> bool:
        if best is None:
            return True
        return val[self.metric] > best[self.metric] if self.higher else val[self.metric] < best[self.metric]

    def state(self, step: int, best: dict[str, Any], running: dict[str, float] | None = None, window: int = 0) -> dict[str, Any]:
        return {
            "step": step,
            "running": dict(running or {}),
            "window": window,
            "student": self.ctx.student.state_dict(),
            "strategy": self.stack.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "best": best,
            "rng": torch.get_rng_state(),
        }

    def restore(self, ckpt: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.ctx.student.load_state_dict(ckpt["student"])
        self.stack.load_state_dict(ckpt["strategy"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        torch.set_rng_state(ckpt["rng"])
        self._resumed_running = (dict(ckpt.get("running") or {}), int(ckpt.get("window", 0)))
        return int(ckpt["step"]), ckpt["best"]

    # -- the loop -------------------------------------------------------------------------------------
    def fit(self, run_dir: Path | None, resume: bool = False, bar: Any = None) -> TrainResult:
        """Train to the budget, validating, checkpointing and logging as configured.

        Args:
            run_dir: this seed's run directory (``None``: nothing is written).
            resume: continue from ``run_dir/checkpoint.pt`` when it exists (else ``checkpoint.prev.pt``).
            bar: a progress bar shared by every seed of a run (one ETA for the whole run); by
                default the seed gets its own bar when ``runtime.progress`` is on.
        """
        total = self.ctx.total_steps
        main = self.dist.is_main
        ckpt_path = run_dir / CHECKPOINT if run_dir else None
        metrics_path = run_dir / "metrics.jsonl" if run_dir and main else None
        step, best = 0, {"val": None, "step": -1, "state": None, "last_val": None}
        if resume and run_dir is not None and resume_point(run_dir) is not None:
            step, best = self.restore(load_resume_point(run_dir))  # checkpoint.pt, else the kept previous one
        if metrics_path is not None:
            _truncate_metrics(metrics_path, step)
        history: list[dict[str, Any]] = []
        previous = self._install_signals()
        own_bar = bar is None
        if own_bar:
            bar = _progress(total, step, self.cfg.runtime.progress and main, self.label)
        else:
            bar.set_description(self.label, refresh=False)
            bar.update(step)  # a resumed seed's finished steps
        running, window = getattr(self, "_resumed_running", ({}, 0))  # partial log window survives resume
        try:
            while step < total:
                tick = time.perf_counter()
                logged = self.train_step(step)
                step += 1
                if self.loggers:
                    seconds = max(time.perf_counter() - tick, 1e-9)
                    self._log_step(logged, step, self.cfg.data.batch_size * self.cfg.optim.accumulate / seconds)
                window += 1
                for k, v in logged.items():
                    running[k] = running.get(k, 0.0) + v
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logged.get('loss', math.nan):.3f}", refresh=False)
                if step % self.eval_every == 0 or step == total:
                    val = self.validate()  # identical on every rank: weights are in sync
                    train_terms = distributed.mean_over_ranks({k: v / window for k, v in running.items()}, self.ctx.device)
                    record = {"step": step, "epoch": round(step / self.ctx.steps_per_epoch, 3),
                              "lr": self.optimizer.param_groups[0]["lr"],
                              **{f"train/{k}": v for k, v in train_terms.items()},
                              **{f"val/{k}": v for k, v in val.items()}}
                    running, window = {}, 0
                    best["last_val"] = val
                    if self._better(val, best["val"]):
                        best.update(val=val, step=step, state=_cpu_copy(self.eval_model().state_dict()))
                    history.append(record)
                    if metrics_path is not None:
                        with open(metrics_path, "a") as f:
                            f.write(json.dumps(record) + "\n")
                    for logger in self.loggers:  # the evaluation record, as written to metrics.jsonl
                        logger.log({k: v for k, v in record.items() if k.startswith("val/") or k == "epoch"}, step)
                    if bar is not None:
                        bar.set_postfix(val=f"{val[self.metric]:.3f}", refresh=True)
                    for hook in self.on_validate:
                        hook(step, val)
                stop = distributed.any_rank(self._signal is not None, self.ctx.device) if self.dist.enabled else self._signal
                if ckpt_path is not None and (step % self.ckpt_every == 0 or step == total or stop):
                    if main:
                        save_checkpoint(self.state(step, best, running, window), ckpt_path, keep_previous=True)
                    distributed.barrier()
                if stop:
                    raise Interrupted(self._signal or signal.SIGTERM)
        finally:
            if bar is not None and own_bar:
                bar.close()
            self._restore_signals(previous)
        return TrainResult(best["step"], best["val"], best["last_val"], best["state"], step, history=history)

    def _log_step(self, logged: dict[str, float], step: int, samples_per_s: float) -> None:
        """Every step's terms, learning rate and throughput to the trackers (the JSONL keeps window means)."""
        metrics = {f"train/{k}": v for k, v in logged.items()}
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["train/samples_per_s"] = samples_per_s
        for logger in self.loggers:
            logger.log(metrics, step)

    def _install_signals(self) -> dict[int, Any]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            self._signal = signum

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records past ``step`` (written after the checkpoint a resumed run restarts from), and a
    torn last line (its writer was killed mid-line); a damaged line elsewhere is a one-line error."""
    if not path.exists():
        return
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    keep = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break

            raise ConfigError(f"{str(path)!r} line {i + 1} is not JSON (damaged metrics log); cannot resume") from None
        if record.get("step", 0) <= step:
            keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))


def _progress(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None

    return steps_progress(total, initial, desc, leave=False)


__all__ = ["Interrupted", "StepModule", "TrainResult", "Trainer", "build_optimizer", "build_schedule", "freeze"]
