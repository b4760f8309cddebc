"""kdzoo's own executors (``local``, ``slurm``, ``ray``), registered by the bench as part of kdzoo's plugin.

The zoo sits below the bench and never imports it, so the bench adds this module to a zoo's built-in
plugin (:meth:`kdzoo.zoo.plugins.Zoo.add_part`) before it looks up an executor
(:func:`with_builtin_executors`); the executors are then credited to ``kdzoo`` and keep its place in
the registration order, as if the built-in plugin had registered them itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from ...contract.hookspecs import hookimpl
from .local import make_local


@hookimpl
def register_executors(register):
    register("local", make_local, description="worker processes on this machine (the default)")
    register("slurm", _lazy("slurm", "make_slurm"), requires="submitit", install="'kdzoo[slurm]'",
             description="one Slurm job per cell, through submitit")
    register("ray", _lazy("ray_tasks", "make_ray"), requires="ray", install="'kdzoo[ray]'",
             description="one Ray task per cell, on a Ray cluster or a local one")


def _lazy(module: str, factory: str):
    """A factory that imports its executor module (and so submitit or Ray, optional dependencies) only when
    it is built."""

    def make(options):
        return getattr(importlib.import_module(f"kdzoo.bench.executors.{module}"), factory)(options)

    make.__name__ = factory
    return make


def with_builtin_executors(zoo: Any) -> Any:
    """``zoo`` with kdzoo's own executors added to its built-in plugin (once); returns ``zoo``."""
    zoo.add_part(sys.modules[__name__])
    return zoo


__all__ = ["register_executors", "with_builtin_executors"]
