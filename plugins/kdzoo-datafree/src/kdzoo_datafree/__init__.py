"""kdzoo-datafree: data-free distillation (the student never sees a real training image).

Strategies: ``dafl`` (Chen et al. 2019), ``dfad`` (Fang et al. 2019), ``deep-inversion``
(Yin et al. 2020; its BN-statistics prior is also a ``bn`` option of ``dafl``/``dfad``), the
``noise-kd`` control and ``set-kd`` (a cached synthetic set or out-of-domain images).
"""

from __future__ import annotations

import kdzoo

from .controls import NoiseKD, SetKD
from .dafl import DAFL
from .deepinversion import DeepInversion
from .dfad import DFAD

STRATEGIES = (DAFL, DFAD, DeepInversion, NoiseKD, SetKD)


@kdzoo.hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)
