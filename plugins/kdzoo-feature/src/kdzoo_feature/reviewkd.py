"""ReviewKD — Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021, arXiv:2104.09044.

Knowledge review: each teacher stage is matched not by the student's same stage alone but by a
fusion of that stage with all deeper student stages. The student's stage maps plus its pooled
feature (as a ``1x1`` map) are taken deep to shallow; the attention-based fusion (ABF) of a level
applies a 1x1 conv + BN to the student map, fuses it with the residual from the deeper level
(upsampled, nearest) through two sigmoid attention maps computed from both, resizes the result to
the teacher's map and applies a 3x3 conv + BN to the teacher's width; the fused result is the
residual passed to the next, shallower level. The hierarchical context loss
(:func:`kdzoo.losses.hcl_loss`) compares each fused output with the teacher's map of that level, at
full size and average-pooled to 4x4, 2x2 and 1x1. As the authors' ``ABF``/``ReviewKD`` in mdistiller
(``mid_channel = min(512, width of the deepest student level)``, Kaiming-uniform init with ``a = 1``),
with a linear warm-up ``min(epoch / warmup_epochs, 1)`` of the term.

Levels: the stage outputs of each model (the last map of each reduction of a CNN; for a ViT, maps
spread in depth), the deepest ``max_stages`` of them paired in order, plus the pooled features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Strategy, param
from kdzoo.losses import hcl_loss

from .layers import Layer, as_map, feature_layers, resolve_layer, spread


@dataclass
class ReviewKDConfig:
    """ReviewKD parameters (each field: default, bounds, help)."""

    weight: float = param(1.0, ge=0, help="weight of the HCL term (mdistiller's ``REVIEWKD_WEIGHT``).")
    ce_weight: float = param(1.0, ge=0, help="weight of the hard-label cross-entropy.")
    warmup_epochs: float = param(20.0, ge=0, help="epochs of linear warm-up of the HCL term.")
    max_stages: int = param(
        3, ge=1, help="stage maps per model (spread in depth, the deepest included), plus the pooled features.")
    max_mid_channels: int = param(512, ge=1, help="cap of the ABF's middle width.")


class ABF(nn.Module):
    """Attention-based fusion of one level (the authors' ``ABF``).

    Args:
        in_channels: the student map's channels.
        mid_channels: the fusion width (shared by every level).
        out_channels: the teacher map's channels.
        fuse: whether a deeper residual is fused in (every level but the deepest).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels))
        self.att_conv = nn.Sequential(nn.Conv2d(mid_channels * 2, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Tensor | None, out_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Fuse one level.

        Args:
            x: the student map ``[B, C_in, H, W]``.
            residual: the deeper level's fused map ``[B, C_mid, h, w]`` (``None`` at the deepest level).
            out_size: the teacher map's ``(H_t, W_t)``.

        Returns:
            ``(output [B, C_out, H_t, W_t], residual [B, C_mid, H_t, W_t])``.
        """
        n, _, h, w = x.shape
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, (h, w), mode="nearest")
            z = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * z[:, 0].view(n, 1, h, w) + residual * z[:, 1].view(n, 1, h, w)
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, out_size, mode="nearest")
        return self.conv2(x), x


def stage_maps(layers: list[Layer]) -> list[Layer]:
    """A model's stage outputs: maps larger than 1x1, the last of each reduction when it has several."""
    maps = [layer for layer in layers if layer.is_map and layer.spatial > 1]
    if len({m.reduction for m in maps}) > 1:
        maps = [m for i, m in enumerate(maps) if i + 1 == len(maps) or maps[i + 1].reduction != m.reduction]
    return maps


class ReviewKD(Strategy):
    """Knowledge review: student stages fused deep-to-shallow (ABF), matched to every teacher stage (HCL)."""

    name = "reviewkd"
    family = "feature"
    paper = "Chen et al. CVPR 2021, arXiv:2104.09044"
    Config = ReviewKDConfig
    presets = {"paper": {"weight": 1.0, "ce_weight": 1.0, "warmup_epochs": 20.0, "max_stages": 3,
                         "max_mid_channels": 512},
               "cpu": {"warmup_epochs": 2.0}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: ReviewKDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        s_layers, t_layers = feature_layers(ctx.student), feature_layers(ctx.teacher)
        s_name, t_name = ctx.student.meta["name"], ctx.teacher.meta["name"]
        resolve_layer(s_layers, 0, s_name, "student")  # one line when a model has no intermediate features
        resolve_layer(t_layers, 0, t_name, "teacher")
        s_maps, t_maps = stage_maps(s_layers), stage_maps(t_layers)
        k = min(len(s_maps), len(t_maps), config.max_stages)
        if k == 0:
            bad, layers = (s_name, s_layers) if not s_maps else (t_name, t_layers)
            raise ConfigError(f"reviewkd needs spatial stage maps; {bad!r} has none larger than 1x1 "
                              f"(available layers: {', '.join(x.describe() for x in layers)})")
        d_s, d_t = ctx.student.num_features, ctx.teacher.num_features
        if d_s <= 0 or d_t <= 0:
            bad = s_name if d_s <= 0 else t_name
            raise ConfigError(f"reviewkd: model {bad!r} reports no num_features (pre-logit width)")
        self.pairs = list(zip(spread(t_maps, k), spread(s_maps, k)))  # shallow to deep
        in_ch = [s.channels for _, s in self.pairs] + [d_s]
        out_ch = [t.channels for t, _ in self.pairs] + [d_t]
        self.out_sizes = [tuple(t.shape[1:]) for t, _ in self.pairs] + [(1, 1)]
        mid = min(config.max_mid_channels, in_ch[-1])
        # abfs[0] is the deepest level (the pooled features), as the authors' reversed list
        self.abfs = nn.ModuleList(ABF(c_in, mid, c_out, fuse=i < len(in_ch) - 1)
                                  for i, (c_in, c_out) in enumerate(zip(in_ch, out_ch)))[::-1]

    def needs(self) -> Needs:
        return Needs(
            Requirement(logits=True, pooled=True, features=tuple(sorted({s.index for _, s in self.pairs}))),
            Requirement(pooled=True, features=tuple(sorted({t.index for t, _ in self.pairs}))))

    def term_weights(self) -> dict[str, float]:
        return {"reviewkd": self.config.weight, "label": self.config.ce_weight}

    def fuse(self, student: list[Tensor]) -> list[Tensor]:
        """The ABF outputs, shallow to deep, from the student's levels ``student`` (shallow to deep)."""
        xs, sizes = student[::-1], self.out_sizes[::-1]
        out, residual = self.abfs[0](xs[0], None, sizes[0])
        results = [out]
        for x, abf, size in zip(xs[1:], self.abfs[1:], sizes[1:]):
            out, residual = abf(x, residual, size)
            results.insert(0, out)
        return results

    def forward(self, batch, student, teacher, step):
        s_levels = [as_map(student.features[s.index]) for _, s in self.pairs]
        s_levels.append(student.pooled.flatten(1)[:, :, None, None])
        t_levels = [as_map(teacher.features[t.index]) for t, _ in self.pairs]
        t_levels.append(teacher.pooled.flatten(1)[:, :, None, None])
        loss = hcl_loss(self.fuse(s_levels), t_levels)
        warm = min(step.epoch / self.config.warmup_epochs, 1.0) if self.config.warmup_epochs > 0 else 1.0
        return {"reviewkd": warm * loss}
