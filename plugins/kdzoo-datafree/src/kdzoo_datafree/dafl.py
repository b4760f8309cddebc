"""DAFL — Chen et al., "Data-Free Learning of Student Networks", ICCV 2019, arXiv:1904.01186.

The teacher acts as a fixed discriminator for a generator ``G``; on each iteration (authors' code,
``DAFL/DAFL-train.py``), with ``x = G(z)`` and the teacher's logits ``y_T`` and penultimate
features ``f_T``:

    L_oh = CE(y_T, argmax y_T)                 one-hot loss: confident teacher outputs
    L_a  = -mean |f_T|                         activation loss (code: mean of abs, not the L1 sum)
    L_ie = sum_k p_k log10 p_k,  p = mean_batch softmax(y_T)    information entropy (= -H, log10)
    L_G  = oh * L_oh + ie * L_ie + a * L_a     (+ bn * R_feature, the DeepInversion prior, optional)
    L_S  = KL(softmax(y_T) || softmax(S(x.detach())))   T = 1, summed over classes, / batch

Here the generator step runs inside the source's ``next_batch`` and the student gets the same
(detached) images, so one student step = one generator step, as in the authors' loop. The
student's optimiser is the run's (``optim.*``; the MNIST recipe used Adam lr 2e-3, kdzoo's default).
Budget: ``train.steps`` student iterations = generator iterations (the paper: 200 x 120 at batch 512).
The terms are in :mod:`kdzoo.losses` (``one_hot_loss``, ``activation_loss``, ``information_entropy_loss``,
``kd_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdzoo.plugin import Requirement, RunContext, param
from kdzoo.losses import activation_loss, information_entropy_loss, kd_loss, one_hot_loss

from .base import DataFreeStrategy
from .bn_prior import BNStatisticsPrior
from .generator import GeneratorA
from .sources import GeneratorSource


@dataclass
class DAFLConfig:
    """DAFL parameters (each field: default, bounds, help)."""

    oh: float = param(1.0, ge=0, help="weight of the one-hot loss.")
    ie: float = param(5.0, ge=0, help="weight of the information-entropy loss.")
    a: float = param(0.1, ge=0, help="weight of the activation loss.")
    bn: float = param(
        0.0, ge=0, help="weight of DeepInversion's BN-statistics prior on the generator (0: off; needs a BN teacher).")
    lr_g: float = param(
        0.2, gt=0, help="Adam learning rate of the generator (the MNIST recipe's 0.2 is what the code uses).")
    nz: int = param(100, gt=0, help="latent size.")
    ngf: int = param(64, gt=0, help="generator width.")
    bn_eps: float = param(
        0.8, gt=0, help="eps of the generator's inner BN layers (the authors' code passes 0.8).")
    temperature: float = param(1.0, gt=0, help="temperature of the student's KL (the authors': 1).")
    batch_size: int | None = param(
        None, gt=0, help="generated images per iteration (default: ``data.batch_size``).")
    grid_every: int | None = param(None, help="steps between PNG grids (default: about 10 per run; 0: none).")


class DAFL(DataFreeStrategy):
    """DAFL: a generator trained against the frozen teacher (one-hot, activation, entropy losses)."""

    name = "dafl"
    paper = "Chen et al. ICCV 2019, arXiv:1904.01186"
    Config = DAFLConfig
    presets = {
        "smoke": {"ngf": 8, "nz": 16},  # the conformance run's size
        # DAFL-train.py argparse defaults (MNIST): batch 512, 200 x 120 iterations, Adam lr_G 0.2, lr_S 2e-3
        "paper": {"oh": 1.0, "ie": 5.0, "a": 0.1, "lr_g": 0.2, "nz": 100, "ngf": 64, "bn_eps": 0.8, "batch_size": 512},
        # chosen on mnist5k validation under a 10-minute CPU budget (see the plugin README): without the
        # BN-statistics prior DAFL stays near chance at this scale (val 10-20 % for lr_g 0.02 and 0.2)
        "cpu": {"oh": 1.0, "ie": 5.0, "a": 0.1, "bn": 5.0, "lr_g": 0.02, "nz": 100, "ngf": 16, "bn_eps": 0.8,
                "batch_size": 128},
    }

    def __init__(self, config: DAFLConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.prior = BNStatisticsPrior(ctx.teacher, "dafl with bn > 0") if config.bn > 0 else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed + 101)
            gen = GeneratorA(config.nz, config.ngf, ctx.data_shape[0], ctx.data_shape[1:], config.bn_eps)
        self.source = GeneratorSource(ctx, gen, self.objective, lr=config.lr_g, g_every=1, reuse=True,
                                      batch_size=config.batch_size, grid_every=config.grid_every)

    def objective(self, x: Tensor, ctx: RunContext) -> tuple[Tensor, dict[str, float]]:
        """DAFL's generator loss on data-space images ``x`` ``[B, C, H, W]``."""
        c = self.config
        if self.prior is not None:
            with self.prior:
                out = ctx.teacher.outputs(x, Requirement(logits=True, pooled=True))
            bn = self.prior.loss()
        else:
            out = ctx.teacher.outputs(x, Requirement(logits=True, pooled=True))
            bn = None
        logits = out.logits.float()
        oh, ie, act = one_hot_loss(logits), information_entropy_loss(logits), activation_loss(out.pooled.float())
        loss = c.oh * oh + c.ie * ie + c.a * act
        logged = {"oh": oh.item(), "ie": ie.item(), "a": act.item()}
        if bn is not None:
            loss = loss + c.bn * bn
            logged["bn"] = bn.item()
        return loss, logged

    def forward(self, batch, student, teacher, step):
        return {"kd": kd_loss(student.logits, teacher.logits, self.config.temperature), **self.inner_terms()}


__all__ = ["DAFL"]
