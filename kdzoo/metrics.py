"""Evaluation metrics and the project's paired "A beats B" rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import eval_chunks


@torch.no_grad()
def embed(model: torch.nn.Module, x: Tensor, idx: np.ndarray, batch_size: int = 512,
          device: torch.device | None = None) -> Tensor:
    """Pooled (pre-logit) embeddings ``[N, D]`` of ``x[idx]`` (data space), float32 on ``device``.

    ``model`` is a ``KDModel``; it runs in eval mode (BN statistics never move) and its mode is
    restored. ``device`` defaults to the model's.
    """
    from .strategy import Requirement

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

    Classification: top-1 agreement (%). Regression: MAE and MSE between their outputs.
    """
    s_out, t_out = [], []
    modes = student.training, teacher.training
    student.eval(), teacher.eval()
    for xb, _ in eval_chunks(x, torch.zeros(len(x)), idx, batch_size):
        xb = xb.to(device) if device else xb
        s_out.append(student(xb).float().cpu())
        t_out.append(teacher(xb).float().cpu())
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


def latency_ms(model: torch.nn.Module, sample: Tensor, batch: int = 64, repeats: int = 5) -> float:
    """Median CPU inference time per image (ms) at batch ``batch``, after one warm-up."""
    import time

    x = sample[:1].expand(batch, *sample.shape[1:]).contiguous()
    was = model.training
    model.eval()
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    model.train(was)
    return float(np.median(times) / batch * 1000)


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


@dataclass
class Comparison:
    """Paired comparison of A against B over seeds (positive difference: A is better)."""

    seeds: list[int]
    mean_diff: float
    std_err: float
    wins: int
    beats: bool

    def line(self, a: str, b: str) -> str:
        verdict = "beats" if self.beats else "does not beat"
        return (f"{a} {verdict} {b}: mean paired difference {self.mean_diff:+.2f} "
                f"(2 s.e. = {2 * self.std_err:.2f}), wins {self.wins}/{len(self.seeds)} seeds")


def compare(a: Mapping[int, float], b: Mapping[int, float], higher_is_better: bool = True) -> Comparison:
    """The project's rule: A beats B when, paired by seed, the mean difference exceeds two
    standard errors of the differences, or A wins on every seed.

    Args:
        a: metric by seed for A.
        b: metric by seed for B (only seeds present in both count).
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("no common seeds to compare")
    sign = 1.0 if higher_is_better else -1.0
    diffs = np.array([sign * (a[s] - b[s]) for s in seeds])
    mean = float(diffs.mean())
    se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.inf
    wins = int((diffs > 0).sum())
    beats = bool((len(diffs) > 1 and mean > 2 * se) or wins == len(diffs))
    return Comparison(seeds, mean, se, wins, beats)


def format_mean_std(values: Sequence[float], digits: int = 2) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


__all__ = ["Comparison", "agreement", "compare", "count_flops", "evaluate", "latency_ms", "format_mean_std", "mean_std", "primary_metric"]
