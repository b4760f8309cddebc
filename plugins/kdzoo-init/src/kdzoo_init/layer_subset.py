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

from dataclasses import dataclass, field
from typing import Literal

import kdzoo

from .base import ParameterInit
from .mapping import LayerMap


@dataclass
class LayerSubsetConfig:
    """Attributes:
    every: take teacher blocks ``0, k, 2k, ...`` (ignored when ``blocks`` is given).
    blocks: explicit teacher block index per student block, e.g. ``[0, 2, 4, 7, 9, 11]``; applied to
        every container whose depth differs, so it must have one entry per student block there.
    element_selection: ``uniform`` or ``consecutive`` cut tensors of different width; ``none`` requires
        equal shapes (DistilBERT).
    allow_partial: accept a teacher/student pair that mostly does not map (the rest stays random).
    """

    every: int = 2
    blocks: list[int] = field(default_factory=list)
    element_selection: Literal["uniform", "consecutive", "none"] = "uniform"
    allow_partial: bool = False

    def __post_init__(self) -> None:
        if self.every < 1:
            raise kdzoo.ConfigError(f"strategy.layer-subset.every must be >= 1, got {self.every}")
        if any(b < 0 for b in self.blocks):
            raise kdzoo.ConfigError(f"strategy.layer-subset.blocks must be non-negative, got {self.blocks}")


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
                    raise kdzoo.ConfigError(
                        f"strategy.layer-subset.blocks={blocks}: container {container!r} has {n_student} student "
                        f"blocks and {n_teacher} teacher blocks; give {n_student} indices below {n_teacher}")
                return list(blocks)
            return [j * every if j * every < n_teacher else None for j in range(n_student)]

        return subset

    def element_selection(self):
        return self.config.element_selection
