"""The one training loop every strategy runs through.

The trainer knows nothing about any particular strategy: it asks the stack what the models must
output, whether gradients flow through the teacher, where batches come from, and which loss
terms to add. The teacher is frozen (eval mode, ``requires_grad=False``) and runs under
``no_grad`` unless the stack needs gradients through it.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .config import OptimConfig, RunConfig
from .context import RunContext
from .data import BatchPlan
from .metrics import evaluate, primary_metric
from .stack import StrategyStack
from .strategy import Batch, StepInfo


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}; checkpoint saved, continue with --resume")
        self.signum = signum


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients (BN statistics never update)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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
        plan: the real-data batch plan, or ``None`` when the stack supplies its own data.
        source: the stack's data source (``stack.data_source(ctx)``), if any.
        target_norm: regression target mean/std (metrics are reported in original units).
    """

    def __init__(self, ctx: RunContext, stack: StrategyStack, plan: BatchPlan | None,
                 target_norm: tuple[torch.Tensor, torch.Tensor] | None = None, source: Any = None) -> None:
        self.ctx, self.stack, self.plan = ctx, stack, plan
        self.cfg: RunConfig = ctx.config
        self.target_norm = target_norm
        self.needs = stack.needs()
        self.source = source
        if self.source is None and plan is None:
            raise ValueError("no training data: give a batch plan or a strategy with a data source")
        if ctx.teacher is not None:
            freeze(ctx.teacher)
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

    # -- one step -----------------------------------------------------------------------------------
    def _batch(self, micro_step: int, info: StepInfo) -> Batch:
        if self.source is not None:
            return self.source.next_batch(info, self.ctx)
        return self.plan.batch(micro_step)

    def _label_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor | None:
        if self.stack.label_weight == 0 or batch.y is None or not batch.labelled.any():
            return None
        m = batch.labelled
        if self.ctx.task == "regression":
            return F.mse_loss(logits[m], batch.y[m].to(logits.dtype))
        return F.cross_entropy(logits[m], batch.y[m], label_smoothing=self.cfg.optim.label_smoothing)

    def train_step(self, step: int) -> dict[str, float]:
        """One optimiser step (``accumulate`` micro-batches); returns the logged terms."""
        ctx, stack = self.ctx, self.stack
        stage, start, length = stack.stage_at(step, ctx.total_steps)
        info = StepInfo(step, ctx.total_steps, step / ctx.steps_per_epoch, stage.name, step - start, length)
        accum = self.cfg.optim.accumulate
        self.optimizer.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        for micro in range(accum):
            batch = self._batch(step * accum + micro, info)
            t_out = None
            if ctx.teacher is not None and self.needs.teacher.any:
                with torch.set_grad_enabled(stack.teacher_grad):
                    t_out = ctx.teacher.outputs(batch.x, self.needs.teacher)
            s_out = ctx.student.outputs(batch.x, self.needs.student)
            terms = stack.losses(batch, s_out, t_out, info)
            label = self._label_loss(batch, s_out.logits) if s_out.logits is not None else None
            if label is not None:
                terms["label"] = (label, stack.label_weight)
            if not terms:
                raise RuntimeError(f"strategy {'+'.join(stack.names)} returned no loss term at step {step}")
            total = sum(w * v for v, w in terms.values())
            (total / accum).backward()
            for name, (value, _) in terms.items():
                logged[name] = logged.get(name, 0.0) + float(value.detach()) / accum
            logged["loss"] = logged.get("loss", 0.0) + float(total.detach()) / accum
        if self.cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        if self.ema is not None:
            self.ema.update_parameters(ctx.student)
        return logged

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

    def state(self, step: int, best: dict[str, Any]) -> dict[str, Any]:
        return {
            "step": step,
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
        return int(ckpt["step"]), ckpt["best"]

    # -- the loop -------------------------------------------------------------------------------------
    def fit(self, run_dir: Path | None, resume: bool = False) -> TrainResult:
        """Train to the budget, validating, checkpointing and logging as configured."""
        total = self.ctx.total_steps
        ckpt_path = run_dir / "checkpoint.pt" if run_dir else None
        metrics_path = run_dir / "metrics.jsonl" if run_dir else None
        step, best = 0, {"val": None, "step": -1, "state": None, "last_val": None}
        if resume and ckpt_path is not None and ckpt_path.exists():
            step, best = self.restore(load_checkpoint(ckpt_path))
        if metrics_path is not None:
            _truncate_metrics(metrics_path, step)
        history: list[dict[str, Any]] = []
        previous = self._install_signals()
        bar = _progress(total, step, self.cfg.runtime.progress, f"{'+'.join(self.stack.names)} seed {self.ctx.seed}")
        running: dict[str, float] = {}
        try:
            while step < total:
                logged = self.train_step(step)
                step += 1
                for k, v in logged.items():
                    running[k] = running.get(k, 0.0) + v
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logged['loss']:.3f}", refresh=False)
                if step % self.eval_every == 0 or step == total:
                    val = self.validate()
                    record = {"step": step, "epoch": round(step / self.ctx.steps_per_epoch, 3),
                              "lr": self.optimizer.param_groups[0]["lr"],
                              **{f"train/{k}": v / self.eval_every for k, v in running.items()},
                              **{f"val/{k}": v for k, v in val.items()}}
                    running = {}
                    best["last_val"] = val
                    if self._better(val, best["val"]):
                        best.update(val=val, step=step, state=_cpu_copy(self.eval_model().state_dict()))
                    history.append(record)
                    if metrics_path is not None:
                        with open(metrics_path, "a") as f:
                            f.write(json.dumps(record) + "\n")
                    if bar is not None:
                        bar.set_postfix(val=f"{val[self.metric]:.3f}", refresh=True)
                if ckpt_path is not None and (step % self.ckpt_every == 0 or step == total or self._signal):
                    save_checkpoint(self.state(step, best), ckpt_path)
                if self._signal:
                    raise Interrupted(self._signal)
        finally:
            if bar is not None:
                bar.close()
            self._restore_signals(previous)
        return TrainResult(best["step"], best["val"], best["last_val"], best["state"], step, history=history)

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


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records past ``step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def _progress(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


__all__ = ["Interrupted", "TrainResult", "Trainer", "build_optimizer", "build_schedule", "freeze"]
