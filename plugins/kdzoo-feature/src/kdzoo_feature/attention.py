"""Attention transfer — Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the
Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017, arXiv:1612.03928.

The activation-based spatial attention map of a feature ``A [B, C, H, W]`` is
``Q = normalize(mean_c |A|^p)`` flattened to ``[B, H*W]`` (L2 normalisation; the mean over
channels equals the paper's sum up to a factor the normalisation removes). The loss of one pair is
``(Q_s - Q_t).pow(2).mean()`` as in the official code (:func:`kdzoo.losses.at_loss`), summed over pairs and weighted
``beta / 2`` (the official ``opt.beta / 2 * sum(loss_groups)``, ``beta = 1000``). Parameter-free;
where resolutions differ both maps are average-pooled to the smaller one first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Strategy, param
from kdzoo.losses import at_loss

from .layers import Layer, as_map, feature_layers, match, parse_pairs, resolve_layer, spread


@dataclass
class ATConfig:
    """AT parameters (each field: default, bounds, help)."""

    beta: float = param(
        1000.0, ge=0, help="the paper's weight; the summed attention term is weighted ``beta / 2``.")
    p: float = param(2.0, gt=0, help="exponent of ``|A|^p`` (2 in the paper).")
    pairs: str | list[list[Any]] = param(
        "auto", help="``auto`` or ``[[teacher layer, student layer], ...]`` by stage index or module name.")
    max_pairs: int = param(
        3, ge=1, help="number of automatic pairs (student layers spread in depth; 1x1 maps skipped).")

    def __post_init__(self) -> None:
        if isinstance(self.pairs, str) and self.pairs != "auto":
            raise ConfigError(f"strategy.at.pairs must be 'auto' or a list of [teacher layer, student layer], "
                              f"got {self.pairs!r}")


def at_pairs(teacher: Any, student: Any, pairs: str | list, max_pairs: int) -> list[tuple[Layer, Layer]]:
    """Teacher/student layer pairs for attention transfer (spatial maps only)."""
    t_layers, s_layers = feature_layers(teacher), feature_layers(student)
    t_name, s_name = teacher.meta["name"], student.meta["name"]
    if pairs != "auto":
        out = [(resolve_layer(t_layers, t, t_name, "teacher"), resolve_layer(s_layers, s, s_name, "student"))
               for t, s in parse_pairs(pairs)]
    else:
        resolve_layer(s_layers, 0, s_name, "student")  # a clear error when the model has no layers
        resolve_layer(t_layers, 0, t_name, "teacher")
        s_maps = [s for s in s_layers if s.is_map and s.spatial > 1]
        if len({s.reduction for s in s_maps}) > 1:  # a CNN: the last layer of each reduction (a stage's output)
            s_maps = [s for i, s in enumerate(s_maps) if i + 1 == len(s_maps) or s_maps[i + 1].reduction != s.reduction]
        t_maps = [t for t in t_layers if t.is_map and t.spatial > 1]
        if not s_maps or not t_maps:
            bad, layers = (s_name, s_layers) if not s_maps else (t_name, t_layers)
            raise ConfigError(f"attention transfer needs spatial feature maps; {bad!r} has none larger than 1x1 "
                              f"(available layers: {', '.join(x.describe() for x in layers)})")
        out = []
        for s in spread(s_maps, max_pairs):
            pair = (match(t_layers, s_layers, s, t_maps), s)
            if pair not in out:
                out.append(pair)
    for t, s in out:
        for layer, name in ((t, t_name), (s, s_name)):
            if not layer.is_map:
                raise ConfigError(f"attention transfer needs spatial maps; layer {layer.describe()} of {name!r} "
                                  f"is a vector")
    return out


class AttentionTransfer(Strategy):
    """Attention transfer: match normalised spatial attention maps (sum of |A|^p over channels)."""

    name = "at"
    family = "feature"
    paper = "Zagoruyko & Komodakis 2017, arXiv:1612.03928"
    Config = ATConfig
    presets = {"paper": {"beta": 1000.0, "p": 2.0}}
    label_space = "any"
    uses_unlabelled = True

    def __init__(self, config: ATConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.pairs = at_pairs(ctx.teacher, ctx.student, config.pairs, config.max_pairs)

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True, features=tuple(sorted({s.index for _, s in self.pairs}))),
                     Requirement(features=tuple(sorted({t.index for t, _ in self.pairs}))))

    def term_weights(self) -> dict[str, float]:
        return {"at": self.config.beta / 2}

    def forward(self, batch, student, teacher, step):
        loss = sum(at_loss(as_map(student.features[s.index]), as_map(teacher.features[t.index]), self.config.p)
                   for t, s in self.pairs)
        return {"at": loss}
