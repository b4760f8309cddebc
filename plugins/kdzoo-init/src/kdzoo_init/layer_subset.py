"""Layer-subset init — Sanh, Debut, Chaumond, Wolf, "DistilBERT, a distilled version of BERT: smaller,
faster, cheaper and lighter", arXiv:1910.01108 (``extract_distilbert.py`` in huggingface/transformers
copies teacher layers ``[0, 2, 4, 7, 9, 11]`` into the 6-layer student).

Every block container whose depth differs between teacher and student is filled from a subset of the
teacher's blocks: every ``k``-th (``every``, student block ``j`` <- teacher block ``j * k``) or an
explicit list (``blocks``, one teacher index per student block). Containers of equal depth map index
to index. Widths are normally equal (pure layer selection); tensors of different width are cut with
the uniform element selection of weight selection unless ``element_selection`` is ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kdzoo.plugin import ConfigError, param

from .base import ParameterInit
from .mapping import LayerMap


@dataclass
class LayerSubsetConfig:
    """LayerSubset parameters (each field: default, bounds, help)."""

    every: int = param(2, ge=1, help="take teacher blocks ``0, k, 2k, ...`` (ignored when ``blocks`` is given).")
    blocks: list[int] = param(
        default_factory=list, ge=0, help="explicit teacher block index per student block, e.g. ``[0, 2, 4, 7, 9, 11]``;"
                                   " applied to every container whose depth differs, so it must have one entry "
                                   "per student block there.")
    element_selection: Literal["uniform", "consecutive", "none"] = param(
        "uniform", help="``uniform`` or ``consecutive`` cut tensors of different width; ``none`` requires equal shapes "
                        "(DistilBERT).")
    allow_partial: bool = param(
        False, help="accept a teacher/student pair that mostly does not map (the rest stays random).")


class LayerSubset(ParameterInit):
    """Layer-subset init: the student's blocks start as every k-th (or listed) teacher block."""

    name = "layer-subset"
    paper = "Sanh et al. 2019 (DistilBERT), arXiv:1910.01108"
    Config = LayerSubsetConfig
    presets = {"distilbert": {"blocks": [0, 2, 4, 7, 9, 11], "element_selection": "none"}}

    def layer_map(self) -> LayerMap:
        every, blocks = self.config.every, list(self.config.blocks)

        def subset(container: str, n_student: int, n_teacher: int) -> list[int | None]:
            if blocks:
                if len(blocks) != n_student or max(blocks) >= n_teacher:
                    raise ConfigError(
                        f"strategy.layer-subset.blocks={blocks}: container {container!r} has {n_student} student "
                        f"blocks and {n_teacher} teacher blocks; give {n_student} indices below {n_teacher}")
                return list(blocks)
            return [j * every if j * every < n_teacher else None for j in range(n_student)]

        return subset

    def element_selection(self):
        return self.config.element_selection
