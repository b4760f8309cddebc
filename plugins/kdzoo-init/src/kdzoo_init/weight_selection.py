"""Weight selection — Xu, Peng, Zheng, Shen, Mao, Liu, "Initializing Models with Larger Ones", ICLR 2024,
arXiv:2311.18823 (official code: github.com/OscarXZQ/weight-selection).

A smaller student of the same family is initialised from a larger (trained) teacher in three steps:

1. layer selection: ``first-n`` (the paper's choice: student block ``j`` <- teacher block ``j``, within
   each stage of a hierarchical net) or ``evenly-spaced`` (first and last kept, DistilBERT-like);
2. component mapping by identical parameter names (same family, same module names);
3. element selection per dimension: ``uniform`` (the official rule, evenly spaced indices) or
   ``consecutive`` (the first ``S`` indices); the same index set for the same sizes keeps residual
   paths and BatchNorm statistics consistent.

The classifier is skipped when the label spaces differ (the official code always skips it, since its
teacher was trained on other data); here a teacher trained on the student's labels passes it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kdzoo.plugin import param

from .base import ParameterInit
from .mapping import LayerMap, evenly_spaced, first_n


@dataclass
class WeightSelectionConfig:
    """WeightSelection parameters (each field: default, bounds, help)."""

    layer_selection: Literal["first-n", "evenly-spaced"] = param(
        "first-n", help="``first-n`` (paper) or ``evenly-spaced`` teacher blocks per container.")
    element_selection: Literal["uniform", "consecutive"] = param(
        "uniform", help="``uniform`` (paper) or ``consecutive`` indices per dimension.")
    allow_partial: bool = param(
        False, help="accept a teacher/student pair that mostly does not map (the rest stays random).")


class WeightSelection(ParameterInit):
    """Weight selection: initialise a smaller student with a subset of a larger teacher's weights."""

    name = "weight-selection"
    paper = "Xu et al. ICLR 2024, arXiv:2311.18823"
    Config = WeightSelectionConfig
    presets = {"paper": {"layer_selection": "first-n", "element_selection": "uniform"}}

    def layer_map(self) -> LayerMap:
        return first_n if self.config.layer_selection == "first-n" else evenly_spaced

    def element_selection(self):
        return self.config.element_selection
