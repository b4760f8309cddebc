"""kdzoo-datafree: data-free distillation (the student never sees a real training image).

Strategies: ``dafl`` (Chen et al. 2019), ``dfad`` (Fang et al. 2019), ``deep-inversion``
(Yin et al. 2020; its BN-statistics prior is also a ``bn`` option of ``dafl``/``dfad``), the
``noise-kd`` control and ``set-kd`` (a cached synthetic set or out-of-domain images).
"""

from __future__ import annotations

from kdzoo.plugin import hookimpl

from .controls import NoiseKD, SetKD
from .dafl import DAFL
from .deepinversion import DeepInversion
from .dfad import DFAD

STRATEGIES = (DAFL, DFAD, DeepInversion, NoiseKD, SetKD)


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)


def _curve_arguments(parser):
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run directories (or seed directories)")


def _curve(args):
    from .grid import main

    return main(args.runs)


@hookimpl
def register_commands(register):
    register("datafree-curve", _curve, setup=_curve_arguments,
             help="redraw curve.png (accuracy by step) of finished data-free runs from metrics.jsonl")
