"""kdzoo-init: the parameter-init transfer family, registered through the ``kdzoo`` entry point.

Strategies initialise the student from the teacher's weights before training and add no loss term, so
they run alone (cross-entropy after init) or stacked with any loss strategy (``weight-selection+kd``).
"""

from __future__ import annotations

from kdzoo.plugin import hookimpl

from .direct_copy import DirectCopy
from .layer_subset import LayerSubset
from .weight_selection import WeightSelection

STRATEGIES = (WeightSelection, LayerSubset, DirectCopy)


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls)
