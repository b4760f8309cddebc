"""Evaluating a model: accuracy, NLL and ECE, teacher-student agreement, embeddings, FLOPs and latency.

The model-side half of the metrics: what is measured of one model (or a student against its
teacher) on a split. The run driver and the trainer evaluate with these; the statistics over seeds
and the paired verdict stay in the bench (:mod:`kdzoo.bench.metrics`, which re-exports these names).
Also here: :func:`primary_metric` (which metric selects checkpoints) and :func:`mean_std` (a metric's
mean and spread over a run's seeds, as a run reports it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..contract.strategy import Requirement
from ..data import eval_chunks


@torch.no_grad()
def embed(model: torch.nn.Module, x: Tensor, idx: np.ndarray, batch_size: int = 512,
          device: torch.device | None = None) -> Tensor:
    """Pooled (pre-logit) embeddings ``[N, D]`` of ``x[idx]`` (data space), float32 on ``device``.

    ``model`` is a ``KDModel``; it runs in eval mode (BN statistics never move) and its mode is
    restored. ``device`` defaults to the model's.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    dummy = torch.zeros(len(x), dtype=torch.long)
    try:
        out = [model.outputs(xb.to(device), Requirement(pooled=True)).pooled.float()
               for xb, _ in eval_chunks(x, dummy, idx, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: Tensor, y: Tensor, idx: np.ndarray, task: str, batch_size: int = 512,
             target_norm: tuple[Tensor, Tensor] | None = None, device: torch.device | None = None) -> dict[str, float]:
    """Metrics of ``model`` on ``x[idx]``.

    Classification: ``acc`` (%), ``nll``, ``ece`` (15 bins). Regression: ``mse`` and ``mae`` in the
    targets' original units (outputs are de-standardised with ``target_norm``).
    """
    was_training = model.training
    model.eval()
    outs, ys = [], []
    for xb, yb in eval_chunks(x, y, idx, batch_size):
        outs.append(model(xb.to(device) if device else xb).float().cpu())
        ys.append(yb)
    model.train(was_training)
    out, target = torch.cat(outs), torch.cat(ys)
    if task == "regression":
        if target_norm is not None:
            out = out * target_norm[1] + target_norm[0]
        err = out - target
        return {"mse": float((err ** 2).mean()), "mae": float(err.abs().mean())}
    probs = out.softmax(-1)
    conf, pred = probs.max(-1)
    correct = (pred == target).float()
    return {"acc": float(correct.mean() * 100), "nll": float(F.cross_entropy(out, target)), "ece": _ece(conf, correct)}


@torch.no_grad()
def agreement(student: torch.nn.Module, teacher: torch.nn.Module, x: Tensor, idx: np.ndarray, task: str,
              batch_size: int = 512, device: torch.device | None = None) -> dict[str, float]:
    """How closely the student follows the teacher on ``x[idx]``.

    The inputs are cast to the teacher's floating-point parameter dtype for the teacher's forward
    (a bf16 teacher takes bf16 inputs); both outputs are compared in float32.

    Classification: top-1 agreement (%). Regression: MAE and MSE between their outputs.
    """
    s_out, t_out = [], []
    modes = student.training, teacher.training
    student.eval(), teacher.eval()
    t_dtype = _param_dtype(teacher)
    for xb, _ in eval_chunks(x, torch.zeros(len(x)), idx, batch_size):
        xb = xb.to(device) if device else xb
        s_out.append(student(xb).float().cpu())
        # a teacher kept in bf16/fp16 (e.g. to save memory) takes its inputs in its own dtype
        t_out.append(teacher(xb if t_dtype is None else xb.to(t_dtype)).float().cpu())
    student.train(modes[0]), teacher.train(modes[1])
    s, t = torch.cat(s_out), torch.cat(t_out)
    if task == "regression":
        return {"teacher_mae": float((s - t).abs().mean()), "teacher_mse": float(((s - t) ** 2).mean())}
    return {"agreement": float((s.argmax(-1) == t.argmax(-1)).float().mean() * 100)}


def count_flops(model: torch.nn.Module, sample: Tensor) -> int:
    """Forward FLOPs for one input (torch's own flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(sample[:1])
    model.train(was)
    return int(counter.get_total_flops())


def latency_ms(model: torch.nn.Module, sample: Tensor, batch: int = 64, repeats: int = 25,
               budget_s: float = 1.0) -> float:
    """Median CPU inference time per image (ms) at batch ``batch``, after three warm-up passes.

    Up to ``repeats`` timed passes, stopping early once ``budget_s`` seconds are spent (never fewer
    than five): tiny models get enough passes for a stable median, large ones stay affordable.
    """
    import time

    x = sample[:1].expand(batch, *sample.shape[1:]).contiguous()
    was = model.training
    model.eval()
    times: list[float] = []
    with torch.no_grad():
        for _ in range(3):  # allocator and kernel caches: the first passes are slower for every model
            model(x)
        started = time.perf_counter()
        while len(times) < repeats and (len(times) < 5 or time.perf_counter() - started < budget_s):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    model.train(was)
    return float(np.median(times) / batch * 1000)


def _param_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype of ``model``'s first floating-point parameter (``None`` when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def _ece(conf: Tensor, correct: Tensor, bins: int = 15) -> float:
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += float(m.float().mean() * (conf[m].mean() - correct[m].mean()).abs())
    return total


def primary_metric(task: str) -> tuple[str, bool]:
    """The metric that selects checkpoints and compares runs, and whether higher is better."""
    return ("acc", True) if task == "classification" else ("mse", False)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


__all__ = ["agreement", "count_flops", "embed", "evaluate", "latency_ms", "mean_std", "primary_metric"]
