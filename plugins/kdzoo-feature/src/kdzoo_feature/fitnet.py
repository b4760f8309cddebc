"""FitNets — Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, arXiv:1412.6550.

Stage 1 (``hint``, exclusive: no label term, no other stack member): a regressor ``r`` maps the
student's guided layer to the teacher's hint layer and ``MSE(r(v_g), u_h)`` trains the student up
to the guided layer (later layers get no gradient) together with ``r``. The paper's
``1/2 ||u_h - r(v_g)||^2`` is taken as a mean (as RepDistiller and timm do). The regressor is a
1x1 convolution between maps (resolutions pooled to the smaller), or a linear layer when either
side is a vector (maps are then globally average-pooled).

Stage 2 (``kd``): the paper's KD of the whole student, ``(1 - alpha) CE + alpha T^2 KL``
(:func:`kdzoo.losses.kd_loss`; the hint term is :func:`kdzoo.losses.hint_loss`). With ``stage2: ce``
fitnet adds nothing in stage 2, so the stage is plain cross-entropy, or whatever the stack adds:
``fitnet+kd`` with ``stage2: ce`` is the same as ``fitnet``; ``fitnet+kd`` with the default
``stage2: kd`` is refused (KD twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Stage, Strategy, alpha_blend, param
from kdzoo.losses import hint_loss, kd_loss

from .layers import Layer, as_map, as_vector, feature_layers, match, resolve_layer


@dataclass
class FitNetConfig:
    """FitNet parameters (each field: default, bounds, help)."""

    hint: int | str = param(
        "auto", help="teacher hint layer: ``auto`` (matched to the guided layer), a stage index or module name.")
    guided: int | str = param(
        "auto", help="student guided layer: ``auto`` (the middle stage, ``n // 2``), an index or module name.")
    hint_fraction: float = param(0.3, gt=0, lt=1, help="share of the step budget spent in the hint stage.")
    hint_weight: float = param(1.0, ge=0, help="weight of the hint term.")
    stage2: Literal["kd", "ce"] = param(
        "kd", help="``kd`` (the paper) or ``ce`` (plain labels, or whatever the stack adds).")
    temperature: float = param(4.0, gt=0, help="KD temperature of stage 2.")
    alpha: float = param(0.9, ge=0, le=1, help="KD weight of stage 2; the label term gets ``1 - alpha``.")


def fitnet_pair(teacher, student, hint: int | str, guided: int | str) -> tuple[Layer, Layer]:
    """The (hint, guided) layers, automatic or named."""
    t_layers, s_layers = feature_layers(teacher), feature_layers(student)
    t_name, s_name = teacher.meta["name"], student.meta["name"]
    if guided == "auto":
        g = resolve_layer(s_layers, len(s_layers) // 2, s_name, "student guided")
    else:
        g = resolve_layer(s_layers, guided, s_name, "student guided")
    if hint == "auto":
        resolve_layer(t_layers, 0, t_name, "teacher hint")  # a clear error when the model has no layers
        h = match(t_layers, s_layers, g)
    else:
        h = resolve_layer(t_layers, hint, t_name, "teacher hint")
    return h, g


class FitNet(Strategy):
    """FitNets: a regressor from a student guided layer to a teacher hint layer (hint stage), then KD."""

    name = "fitnet"
    family = "feature"
    paper = "Romero et al. 2015, arXiv:1412.6550"
    Config = FitNetConfig
    presets = {"paper": {"stage2": "kd", "temperature": 4.0, "alpha": 0.9}, "hint-then-ce": {"stage2": "ce"}}
    uses_unlabelled = True

    def __init__(self, config: FitNetConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        if config.stage2 == "kd" and any(s.name == "kd" for s in ctx.config.strategy):
            raise ConfigError("fitnet already ends with KD (stage2: kd); use 'fitnet' alone, or set "
                              "strategy.fitnet.stage2=ce to let 'kd' supply stage 2")
        self.hint, self.guided = fitnet_pair(ctx.teacher, ctx.student, config.hint, config.guided)
        h, g = self.hint, self.guided
        if h.is_map and g.is_map:
            self.regressor: nn.Module = nn.Conv2d(g.channels, h.channels, kernel_size=1)
        else:
            self.regressor = nn.Linear(g.channels, h.channels)

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True, features=(self.guided.index,)),
                     Requirement(logits=self.config.stage2 == "kd", features=(self.hint.index,)))

    def stages(self) -> list[Stage]:
        f = self.config.hint_fraction
        return [Stage("hint", f, exclusive=True), Stage(self.config.stage2, 1.0 - f)]

    def term_weights(self) -> dict[str, float]:
        # the second stage's split: KD against labels, or labels alone (no kd term is returned then)
        second = alpha_blend("kd", self.config.alpha) if self.config.stage2 == "kd" else {"label": 1.0}
        return {"hint": self.config.hint_weight, **second}

    def regressor_inputs(self, guided: Tensor, hint: Tensor) -> tuple[Tensor, Tensor]:
        """The guided feature and the hint in the regressor's form: both maps, or both vectors ``[B, D]``."""
        guided, hint = as_map(guided), as_map(hint)
        if isinstance(self.regressor, nn.Conv2d):
            return guided, hint
        return as_vector(guided), as_vector(hint)

    def forward(self, batch, student, teacher, step):
        if step.stage == "hint":
            guided, hint = self.regressor_inputs(student.features[self.guided.index], teacher.features[self.hint.index])
            return {"hint": hint_loss(guided, hint, self.regressor)}
        if self.config.stage2 == "kd":
            return {"kd": kd_loss(student.logits, teacher.logits, self.config.temperature)}
        return {}
