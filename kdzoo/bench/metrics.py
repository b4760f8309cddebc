"""Statistics over seeds and the project's paired "A beats B" verdict (a one-sided paired t-test).

The evaluation of one model (accuracy, NLL, ECE, agreement, FLOPs, latency) lives with the models in
:mod:`kdzoo.models.evaluate`; its names are re-exported here, their old import path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..contract.errors import ConfigError
from ..models.evaluate import (agreement, count_flops, embed, evaluate, latency_ms,  # noqa: F401 - re-exported
                               mean_std, primary_metric)


# -- the paired verdict ---------------------------------------------------------------------------
ALPHA = 0.05
"""Level of the one-sided test behind every "beats" verdict."""

MIN_SEEDS = 3
"""Fewest paired seeds that can earn a verdict: with 2 the t-test has one degree of freedom."""

VERDICTS = ("beats", "does not beat", "too few seeds", "identical")


def _paired_t(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-sided paired t-test of "mean difference > 0" on each row of ``diffs`` (``[..., n]``, n >= 2).

    Returns:
        ``(mean, p, ci_low, ci_high)`` per row: the mean difference, the p-value of Student's t with
        n-1 degrees of freedom and the two-sided 95% t interval of the mean. Rows whose differences are
        all equal (no spread) get ``p`` 0 (positive mean) or 1 and a zero-width interval.
    """
    from scipy import stats

    n = diffs.shape[-1]
    mean = diffs.mean(axis=-1)
    se = diffs.std(axis=-1, ddof=1) / math.sqrt(n)
    spread = se > 0
    safe_se = np.where(spread, se, 1.0)  # keeps the division quiet; masked out below
    p = np.where(spread, stats.t.sf(mean / safe_se, n - 1), np.where(mean > 0, 0.0, 1.0))
    half = stats.t.ppf(0.975, n - 1) * se
    return mean, p, mean - half, mean + half


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of A against B over seeds; a positive difference means A is better.

    Attributes:
        verdict: one of ``VERDICTS``; "beats" only when the (Holm-adjusted, if any) one-sided p is
            below ``ALPHA`` with at least ``MIN_SEEDS`` paired seeds.
        n: number of paired seeds.
        wins: seeds on which A is strictly better.
        mean_diff: mean of A − B (sign-flipped for lower-is-better metrics).
        ci_low: lower end of the two-sided 95% t interval of ``mean_diff`` (NaN with one seed).
        ci_high: upper end of that interval.
        p: one-sided paired t-test p-value of "A is better" (NaN with one seed).
        p_adjusted: Holm-adjusted p within its family of comparisons, or None when uncorrected.
        family: number of comparisons in the Holm family, or None.
        seeds: the paired seeds.
    """

    verdict: str
    n: int
    wins: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p: float
    p_adjusted: float | None = None
    family: int | None = None
    seeds: tuple[int, ...] = ()

    @property
    def beats(self) -> bool:
        """True when the verdict is "beats"."""
        return self.verdict == "beats"

    @property
    def tested(self) -> bool:
        """True when the t-test decided the verdict (enough seeds, not identical)."""
        return self.verdict in ("beats", "does not beat")

    def holm(self, p_adjusted: float, family: int) -> Comparison:
        """This comparison with its Holm-adjusted p, the verdict decided by the adjusted p."""
        if not self.tested:
            return self
        verdict = "beats" if self.mean_diff > 0 and p_adjusted < ALPHA else "does not beat"
        return replace(self, verdict=verdict, p_adjusted=float(p_adjusted), family=family)

    def line(self, a: str, b: str) -> str:
        """One readable sentence, e.g. ``kd beats ce: mean paired difference +1.20 (95% CI ...), ...``."""
        if self.verdict == "identical":
            return f"{a} and {b} are identical: every paired difference is 0 ({self.n}/{self.n} seeds)"
        detail = f"mean paired difference {self.mean_diff:+.2f}"
        if not math.isnan(self.p):  # one seed: no spread, no interval, no test
            detail += f" (95% CI {self.ci_low:+.2f} to {self.ci_high:+.2f}), one-sided paired t-test p = {_p(self.p)}"
        if self.p_adjusted is not None:
            detail += f" (Holm-corrected over {self.family} rows: {_p(self.p_adjusted)})"
        detail += f", wins {self.wins}/{self.n} seeds"
        if self.verdict == "too few seeds":
            return f"{a} vs {b}: too few seeds for a verdict ({self.n} paired, {MIN_SEEDS} needed): {detail}"
        return f"{a} {self.verdict} {b}: {detail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as None) plus ``beats``."""
        out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}
        out["seeds"] = list(self.seeds)
        out["beats"] = self.beats
        return out


def _p(v: float) -> str:
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def compare(a: Mapping[int, float], b: Mapping[int, float], higher_is_better: bool = True) -> Comparison:
    """The project's verdict on A against B, paired by seed.

    A one-sided paired t-test on the per-seed differences A − B (Student's t, n-1 degrees of
    freedom): A beats B when p < ``ALPHA`` (0.05). Fewer than ``MIN_SEEDS`` paired seeds give
    "too few seeds" and all-zero differences (bit-identical results) "identical", never a win.
    Benches correct the p-values of several rows against one baseline with :func:`holm_correct`.

    Args:
        a: metric by seed for A.
        b: metric by seed for B (only seeds present in both count).
        higher_is_better: False for metrics such as mse; differences are then sign-flipped so
            that a positive difference still means A is better.

    Raises:
        ConfigError: when A and B share no seed.
    """
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ConfigError(f"no common seeds to compare: A has {sorted(a)}, B has {sorted(b)}; run both on the same seeds")
    sign = 1.0 if higher_is_better else -1.0
    diffs = np.array([sign * (a[s] - b[s]) for s in seeds], dtype=float)
    n, wins = len(diffs), int((diffs > 0).sum())
    if n < 2:
        mean, p, lo, hi = float(diffs.mean()), math.nan, math.nan, math.nan
    else:
        mean, p, lo, hi = (float(v) for v in _paired_t(diffs))
    if not diffs.any():
        verdict = "identical"
    elif n < MIN_SEEDS:
        verdict = "too few seeds"
    else:
        verdict = "beats" if bool(_beats(mean, p, True, n)) else "does not beat"
    return Comparison(verdict, n, wins, mean, lo, hi, p, seeds=seeds)


def _beats(mean: Any, p: Any, nonzero: Any, n: int) -> Any:
    """The rule of the verdict, on numbers or arrays alike (:func:`compare` and :func:`verdict_power` share it):
    enough seeds, not all differences zero, a positive mean difference and p below ``ALPHA``."""
    return (n >= MIN_SEEDS) & np.asarray(nonzero) & (np.asarray(mean) > 0) & (np.asarray(p) < ALPHA)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (0-based) is multiplied by ``m - i``; a running maximum keeps
    the adjusted values monotone, capped at 1. Rejecting where the adjusted p < α controls the
    family-wise error rate at α.
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return [float(v) for v in adjusted]


def holm_correct(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm-correct a family of comparisons (e.g. every row of a task against ``ce``).

    Only tested comparisons form the family; "too few seeds" and "identical" pass through unchanged.
    """
    tested = [i for i, c in enumerate(comparisons) if c.tested]
    out = list(comparisons)
    for i, adjusted in zip(tested, holm([comparisons[i].p for i in tested])):
        out[i] = comparisons[i].holm(adjusted, len(tested))
    return out


def verdict_power(effect_sd: float, n: int, trials: int = 10_000, seed: int = 0) -> float:
    """Fraction of simulated paired experiments that the verdict calls "beats".

    Each experiment draws ``n`` per-seed differences from a normal distribution with mean
    ``effect_sd`` and s.d. 1 (the effect in units of the per-seed difference's s.d.) and applies the
    rule of :func:`compare`. With ``effect_sd`` 0 this is the false-positive rate; otherwise the power.

    Args:
        effect_sd: true mean difference in standard deviations of the per-seed difference.
        n: paired seeds per experiment.
        trials: number of simulated experiments.
        seed: seed of the random generator.
    """
    if n < MIN_SEEDS:
        return 0.0  # the rule never says "beats" with fewer seeds
    diffs = np.random.default_rng(seed).normal(effect_sd, 1.0, size=(trials, n))
    mean, p, _, _ = _paired_t(diffs)
    return float(_beats(mean, p, diffs.any(axis=-1), n).mean())


__all__ = ["ALPHA", "MIN_SEEDS", "VERDICTS", "Comparison", "agreement", "compare", "count_flops", "embed", "evaluate",
           "holm", "holm_correct", "latency_ms", "mean_std", "primary_metric", "verdict_power"]
