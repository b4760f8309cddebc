"""DeepInversion — Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
CVPR 2020, arXiv:1912.08795.

Generator-free inversion: batches of input pixels ``x`` (teacher-normalised, from ``N(0, 1)``) are
optimised directly with Adam against the frozen teacher (authors' code,
``cifar10/deepinversion_cifar10.py``), each step on a randomly rolled copy ``x_jit``:

    L = oh * CE(T(x_jit), y) + tv * R_TV(x_jit) + l2 * ||x_jit||_2 + bn * R_feature(x_jit)
        (+ adi * (1 - JS(p_S, p_T)) at T = 3, probabilities clamped to [0.01, 0.99]: Adaptive DI)

with targets ``y`` cycling through the classes; then the student distils on the pool of
synthesised batches (KL at ``temperature``). The BN-statistics prior needs a teacher with
BatchNorm layers (a clear error otherwise). Budget: ``train.steps`` student iterations;
``batches * iters`` inversion iterations, one round of ``iters`` every ``kd_steps`` student steps. The
terms are in :mod:`kdzoo.losses` (``bn_statistic_loss``, ``tv_loss``, ``image_l2_loss``,
``adi_competition_loss``, ``kd_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from kdzoo.plugin import RunContext, param
from kdzoo.losses import adi_competition_loss, image_l2_loss, kd_loss, tv_loss

from .base import DataFreeStrategy
from .bn_prior import BNStatisticsPrior
from .sources import PixelSource


@dataclass
class DeepInversionConfig:
    """DeepInversion parameters (each field: default, bounds, help)."""

    batches: int = param(8, gt=0, help="synthesis rounds; the pool holds ``batches * synth_batch`` images.")
    synth_batch: int = param(256, gt=0, help="pixels optimised together per round.")
    iters: int = param(2000, ge=0, help="Adam steps per round.")
    lr: float = param(0.05, gt=0, help="Adam learning rate on the pixels.")
    bn: float = param(10.0, ge=0, help="weight of the BN-statistics prior ``R_feature``.")
    oh: float = param(1.0, ge=0, help="weight of the cross-entropy to the round's target classes.")
    tv: float = param(2.5e-5, ge=0, help="weight of the total-variation prior.")
    l2: float = param(0.0, ge=0, help="weight of the L2 image prior.")
    adi: float = param(
        0.0, ge=0, help="weight of Adaptive DeepInversion's competition term (0: plain DeepInversion).")
    jitter: int = param(2, ge=0, help="maximum random roll in pixels.")
    flip: bool = param(False, help="random horizontal flips too (not for digits).")
    kd_steps: int | None = param(
        None, gt=0, help="student steps per synthesis round (default: rounds spread over the first half of the run).")
    temperature: float = param(4.0, gt=0, help="temperature of the student's KL.")
    batch_size: int | None = param(
        None, gt=0, help="student batch drawn from the pool (default: ``data.batch_size``).")
    grid_every: int | None = param(None, help="steps between PNG grids (default: about 10 per run; 0: none).")


class DeepInversion(DataFreeStrategy):
    """DeepInversion: optimise input pixels to the teacher's BN statistics and classes, then distil."""

    name = "deep-inversion"
    paper = "Yin et al. CVPR 2020, arXiv:1912.08795"
    Config = DeepInversionConfig
    presets = {
        "smoke": {"batches": 2, "synth_batch": 16, "iters": 3},  # the conformance run's size
        # the authors' CIFAR-10 README "paper parameters": bs 256, lr 0.05, r_feature 10, 2k iterations,
        # TV 2.5e-5, no L2, jitter 2 (roll only); KD temperature 20 as in the CMI / Fast-DFKD benchmark's DeepInv
        "paper": {"synth_batch": 256, "iters": 2000, "lr": 0.05, "bn": 10.0, "oh": 1.0, "tv": 2.5e-5, "l2": 0.0,
                  "jitter": 2, "temperature": 20.0},
        # chosen on mnist5k validation under a 10-minute CPU budget (see the plugin README)
        "cpu": {"batches": 8, "synth_batch": 256, "iters": 200, "lr": 0.1, "bn": 10.0, "oh": 1.0, "tv": 1e-2,
                "l2": 0.0, "jitter": 2, "temperature": 4.0},
    }

    def __init__(self, config: DeepInversionConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.prior = BNStatisticsPrior(ctx.teacher, "deep-inversion") if config.bn > 0 else None
        self.source = PixelSource(ctx, self.objective, batches=config.batches, synth_batch=config.synth_batch,
                                  iters=config.iters, lr=config.lr, kd_steps=config.kd_steps, jitter=config.jitter,
                                  flip=config.flip, batch_size=config.batch_size, grid_every=config.grid_every)

    def objective(self, x: Tensor, targets: Tensor, ctx: RunContext) -> tuple[Tensor, dict[str, float]]:
        """DeepInversion's loss on jittered teacher-normalised pixels ``x`` ``[B, C, H, W]``."""
        c = self.config
        data = self.source.to_data(x)
        if self.prior is not None:
            with self.prior:
                t = ctx.teacher(data).float()
            bn = self.prior.loss()
        else:
            t, bn = ctx.teacher(data).float(), None
        ce = F.cross_entropy(t, targets)
        loss = c.oh * ce
        logged = {"ce": ce.item()}
        if c.tv:
            tv = tv_loss(x)
            loss, logged["tv"] = loss + c.tv * tv, tv.item()
        if c.l2:
            l2 = image_l2_loss(x)
            loss, logged["l2"] = loss + c.l2 * l2, l2.item()
        if bn is not None:
            loss, logged["bn"] = loss + c.bn * bn, bn.item()
        if c.adi:
            was = ctx.student.training
            ctx.student.eval()  # as the authors' code: the student's BN statistics do not move here
            comp = adi_competition_loss(ctx.student(data).float(), t)
            ctx.student.train(was)
            loss, logged["adi"] = loss + c.adi * comp, comp.item()
        return loss, logged

    def forward(self, batch, student, teacher, step):
        return {"kd": kd_loss(student.logits, teacher.logits, self.config.temperature), **self.inner_terms()}


__all__ = ["DeepInversion"]
