"""The check of every loss term where a strategy returns it.

A term must be a 0-d floating tensor on the student's device and, where its weight is non-zero and
the student's outputs carry a graph, part of that graph. Anything else would fail later, far from its
cause (``grad can be implicitly created only for scalar outputs``, ``'float' object has no attribute
'float'``) or train nothing at all; :func:`check_term` refuses it at once, in one line naming the
distribution, the strategy, the term, what it got and the strategy's ``forward`` ``FILE:LINE``.
The engine's trainer, :class:`kdzoo.Distiller` and :func:`kdzoo.testing.check_strategy` all reach it
through :meth:`kdzoo.zoo.stack.StrategyStack.losses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..contract.errors import PluginError
from .checks import source_line


def describe_value(value: Any) -> str:
    """What a term is, for the message: ``Tensor of shape [16], dtype torch.float32 on cpu`` or ``float 0.5``."""
    if isinstance(value, torch.Tensor):
        return (f"Tensor of shape [{', '.join(str(n) for n in value.shape)}], dtype {value.dtype} on {value.device}"
                + ("" if value.requires_grad else ", without a graph"))
    return f"{type(value).__name__} {value!r:.40}"


def student_device(student: Any, batch: Any) -> torch.device | None:
    """The device of the student's outputs (of the batch when no output was computed)."""
    for value in (getattr(student, "logits", None), getattr(student, "pooled", None),
                  *(getattr(student, "features", None) or {}).values(), getattr(batch, "x", None)):
        if isinstance(value, torch.Tensor):
            return value.device
    return None


def graph_expected(member: Any, student: Any) -> bool:
    """Whether a weighted term of ``member`` must have a graph: grad is on and every student output the
    member reads carries one. (A student whose features are its input, a ``linear`` one, has features
    without a graph: a term on them is the gradient-path check's to refuse, not a plugin fault.)"""
    if not torch.is_grad_enabled():
        return False
    need = member.needs().student
    read = ([getattr(student, "logits", None)] if need.logits else []) + \
        ([getattr(student, "pooled", None)] if need.pooled else []) + \
        [(getattr(student, "features", None) or {}).get(i) for i in need.features]
    read = [t for t in read if isinstance(t, torch.Tensor)]
    return bool(read) and all(t.requires_grad for t in read)


def check_returned(member: Any, returned: Any, distribution: str | None = None) -> None:
    """Refuse a ``forward`` that returned anything but ``{term name (str): value}``, in one line."""
    if isinstance(returned, Mapping) and all(isinstance(k, str) for k in returned):
        return
    what = describe_value(returned) if not isinstance(returned, Mapping) else \
        f"a mapping with keys {list(returned)!r:.60}"
    _refuse(member, distribution, f"forward returned {what}, not a dict of loss terms by name "
                                  "(e.g. {'kd': loss})")


def _refuse(member: Any, distribution: str | None, text: str) -> None:
    cls = type(member)
    where = source_line(cls.forward)
    owner = f"strategy {cls.name!r}" + (f" of {distribution}" if distribution else "")
    raise PluginError(f"{owner}: {text}" + (f" ({where})" if where else ""))


def check_term(member: Any, term: str, value: Any, weight: float, student: Any, batch: Any,
               distribution: str | None = None) -> None:
    """Refuse a malformed loss term of stack member ``member`` in one line.

    Args:
        member: the strategy instance that returned it.
        term: the term's name.
        value: what ``forward`` returned for it.
        weight: its weight in the total.
        student: the student's ``Outputs`` for the batch.
        batch: the micro-batch.
        distribution: the distribution that registered the strategy (named in the message).

    Raises:
        PluginError: the term is not a 0-d floating tensor on the student's device, or has no graph
            while its weight is non-zero.
    """
    device = student_device(student, batch)
    problem = None
    if not isinstance(value, torch.Tensor):
        problem = "not a tensor"
    elif value.dim() != 0:
        problem = "not 0-d (reduce it to a scalar, e.g. with .mean())"
    elif not value.is_floating_point():
        problem = "not floating-point"
    elif device is not None and value.device != device:
        problem = f"not on the student's device ({device})"
    elif weight != 0 and not value.requires_grad and graph_expected(member, student):
        problem = (f"detached from the student's outputs although its weight is {weight:g} "
                   "(no .item(), .detach(), torch.tensor(...) or no_grad on the way)")
    if problem is not None:
        _refuse(member, distribution, f"loss term {term!r} is {problem}: got {describe_value(value)}; forward must "
                                      "return 0-d floating tensors on the student's device")


__all__ = ["check_returned", "check_term", "describe_value", "graph_expected", "student_device"]
