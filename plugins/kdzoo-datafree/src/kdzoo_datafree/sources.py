"""Data sources of the data-free family: where every training batch comes from.

A strategy that returns one of these from ``data_source`` replaces the real training data: the
trainer builds no loader. Each source is a sub-module of its strategy, so its generator (weights
and BN buffers), optimiser state, RNG state and synthesised pool are in the strategy's
``state_dict`` (``get_extra_state``) and a resumed run continues exactly.

Synthetic images are made in the teacher's *normalised* input space (where the DAFL/DFAD
generator's last BN and DeepInversion's pixels live) and handed to the trainer in data space,
``x = z * teacher_std + teacher_mean``, so the teacher's preprocessing gives back exactly ``z``;
they may leave ``[0, 1]``. Batches carry no labels (``y=None``), so no hard-label term is added.

Sources: :class:`GeneratorSource` (DAFL, DFAD), :class:`PixelSource` (DeepInversion),
:class:`GaussianSource` (the noise control), :class:`TensorSource` (a cached synthetic set or
out-of-domain images).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from kdzoo.plugin import Batch, ConfigError, DataSource, RunContext, StepInfo

from .grid import save_curve, save_grid

Objective = Callable[..., tuple[Tensor, dict[str, float]]]


class SyntheticSource(DataSource):
    """Shared parts: the rank-seeded RNG stream, the data-space mapping and PNG grids.

    Args:
        ctx: the run context (its teacher gives the normalisation; data must be images).
        batch_size: samples per student step (default: ``data.batch_size``).
        grid_every: write a PNG grid every this many steps (``None``: about 10 per run; 0: never).
        salt: separates the RNG streams of different sources.
    """

    def __init__(self, ctx: RunContext, batch_size: int | None, grid_every: int | None, salt: int = 0) -> None:
        super().__init__()
        if len(ctx.data_shape) != 3:
            raise ConfigError(f"data-free strategies synthesise images; the data gives {ctx.data_shape} vectors")
        if ctx.teacher is None:
            raise ConfigError("data-free strategies need a teacher; pass --teacher")
        self.shape = tuple(int(s) for s in ctx.data_shape)
        self.batch_size = int(batch_size or ctx.config.data.batch_size)
        total = max(1, ctx.total_steps)
        self.grid_every = max(1, math.ceil(total / 10)) if grid_every is None else int(grid_every)
        c = self.shape[0]
        mean, std = ctx.teacher.mean.detach().float(), ctx.teacher.std.detach().float()
        if mean.numel() != c:  # teacher has another channel count: use the channel average
            mean, std = mean.mean().expand(c), std.mean().expand(c)
        self.register_buffer("norm_mean", mean.reshape(1, c, 1, 1).clone(), persistent=False)
        self.register_buffer("norm_std", std.reshape(1, c, 1, 1).clone(), persistent=False)
        self.rng = torch.Generator().manual_seed((ctx.seed * 1_000_003 + ctx.rank * 7919 + salt) & 0x7FFFFFFF)
        self.last: dict[str, float] = {}  # the inner optimisation's last logged terms

    # -- helpers ---------------------------------------------------------------------------------
    def randn(self, *shape: int) -> Tensor:
        """Standard normal samples from this source's own stream, on the source's device."""
        return torch.randn(*shape, generator=self.rng).to(self.norm_mean.device)

    def randint(self, high: int, n: int) -> Tensor:
        return torch.randint(high, (n,), generator=self.rng)

    def to_data(self, z: Tensor) -> Tensor:
        """Teacher-normalised ``[B, C, H, W]`` -> data space."""
        return z * self.norm_std + self.norm_mean

    def batch(self, x: Tensor) -> Batch:
        n = x.shape[0]
        return Batch(x=x, y=None, labelled=torch.zeros(n, dtype=torch.bool, device=x.device),
                     index=torch.full((n,), -1, dtype=torch.long))

    def maybe_grid(self, step: StepInfo, ctx: RunContext, x: Tensor) -> None:
        """Write a PNG grid of ``x`` (data space) every ``grid_every`` steps, and the accuracy curve."""
        if ctx.run_dir is None or ctx.rank != 0 or self.grid_every <= 0:
            return
        if step.step % self.grid_every and step.step != step.total_steps - 1:
            return
        save_grid(x, ctx.run_dir / "synthetic" / f"step-{step.step:06d}.png")
        save_curve(ctx.run_dir)

    # -- state -------------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])


def apply_grads(params: list[nn.Parameter], loss: Tensor, world_size: int = 1) -> None:
    """Set ``p.grad`` of ``params`` only (nothing else accumulates), averaged over ranks under torchrun.

    ``torch.autograd.grad`` differentiates with respect to ``params`` alone, so an inner step that
    runs the student (DFAD, ADI) leaves the student's gradients untouched.
    """
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        for p in params:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world_size


def teacher_dtype(ctx: RunContext) -> torch.dtype:
    return next(ctx.teacher.parameters()).dtype


def check_frozen(ctx: RunContext) -> None:
    """The teacher must be in eval mode (BN statistics frozen) before gradients flow through it."""
    if ctx.teacher.training:
        raise RuntimeError("data-free inner step: the teacher is in train mode (its BN statistics would move); "
                           "the trainer freezes it, so this is a bug in the caller")


class GeneratorSource(SyntheticSource):
    """Batches from a generator trained inside ``next_batch`` (DAFL, DFAD).

    Every ``g_every``-th step (``step % g_every == 0``) first takes one generator step: latents
    ``z ~ N(0, I)`` from the source's stream, ``x = G(z)``, ``loss = objective(x_data, ctx)``,
    Adam on the generator only. With ``reuse`` the student gets exactly those images, detached
    (DAFL: generator and student losses share one batch); otherwise fresh images from the updated
    generator (DFAD: every student step samples new latents). The generator stays in train mode,
    as in both authors' code (its BN uses batch statistics).

    Args:
        ctx: the run context.
        generator: maps ``[B, nz]`` latents to teacher-normalised images.
        objective: ``objective(x_data, ctx) -> (loss, logged terms)``; the generator minimises it.
        lr: Adam learning rate of the generator.
        betas: Adam betas.
        g_every: student steps per generator step.
        reuse: give the student the generator step's own images.
    """

    def __init__(self, ctx: RunContext, generator: nn.Module, objective: Objective, *, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), g_every: int = 1, reuse: bool = True,
                 batch_size: int | None = None, grid_every: int | None = None) -> None:
        super().__init__(ctx, batch_size, grid_every, salt=1)
        if g_every < 1:
            raise ConfigError(f"student steps per generator step must be >= 1, got {g_every}")
        self.generator, self.objective = generator, objective
        self.g_every, self.reuse = int(g_every), reuse
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=tuple(betas))
        self.world_size = ctx.world_size

    def generator_step(self, ctx: RunContext) -> Tensor:
        """One Adam step of the generator; returns the step's images (data space, detached)."""
        check_frozen(ctx)
        params = [p for p in self.generator.parameters() if p.requires_grad]
        with torch.enable_grad():
            x = self.to_data(self.generator(self.randn(self.batch_size, self.generator.nz)))
            loss, self.last = self.objective(x.to(teacher_dtype(ctx)), ctx)
            apply_grads(params, loss, self.world_size)
        self.optimizer.step()
        return x.detach()

    def next_batch(self, step: StepInfo, ctx: RunContext) -> Batch:
        x = None
        if step.step % self.g_every == 0:
            x = self.generator_step(ctx)
        if x is None or not self.reuse:
            with torch.no_grad():
                x = self.to_data(self.generator(self.randn(self.batch_size, self.generator.nz)))
        self.maybe_grid(step, ctx, x)
        return self.batch(x)

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.optimizer.load_state_dict(state["optimizer"])


class PixelSource(SyntheticSource):
    """A pool of input batches optimised directly (DeepInversion's generator-free inversion).

    Synthesis round ``j`` (at student step ``j * kd_steps``, for ``j < batches``) optimises one batch
    of ``synth_batch`` pixels from ``N(0, 1)`` (teacher-normalised) for ``iters`` Adam steps on
    ``objective(x_norm, targets, ctx)``, each step on a randomly rolled copy (jitter, as the
    authors' code), then appends it to the pool; targets cycle through the classes. Every student
    step draws ``batch_size`` pool images uniformly (the CMI/Fast-DFKD benchmark's protocol: synthesise
    a batch, then ``kd_steps`` student steps on the growing pool). Which rounds are due is a pure
    function of the step, and the pool is checkpointed, so a resumed run continues exactly.

    Args:
        objective: ``objective(x_norm_jittered, targets, ctx) -> (loss, logged terms)``, minimised.
        batches: synthesis rounds (pool size ``batches * synth_batch``).
        synth_batch: pixels optimised together (BN statistics are batch statistics).
        iters: Adam steps per round.
        lr: Adam learning rate on the pixels.
        kd_steps: student steps per round (``None``: rounds spread over the first half of the run).
        jitter: maximum roll in pixels.
        flip: also flip horizontally at random.
    """

    def __init__(self, ctx: RunContext, objective: Objective, *, batches: int, synth_batch: int, iters: int,
                 lr: float, kd_steps: int | None = None, jitter: int = 2, flip: bool = False,
                 batch_size: int | None = None, grid_every: int | None = None) -> None:
        super().__init__(ctx, batch_size, grid_every, salt=2)
        if batches < 1 or synth_batch < 1 or iters < 0:
            raise ConfigError("deep-inversion: batches and synth_batch must be >= 1 and iters >= 0")
        self.objective, self.batches, self.synth_batch, self.iters, self.lr = objective, batches, synth_batch, iters, lr
        self.kd_steps = int(kd_steps or max(1, round(0.5 * max(1, ctx.total_steps) / batches)))
        self.jitter, self.flip = int(jitter), bool(flip)
        self.num_classes = ctx.num_classes
        self.progress = bool(ctx.config.runtime.progress) and ctx.rank == 0
        self.pool: Tensor | None = None

    @property
    def rounds_done(self) -> int:
        return 0 if self.pool is None else self.pool.shape[0] // self.synth_batch

    def synthesise(self, ctx: RunContext) -> Tensor:
        """One round: ``iters`` Adam steps on a fresh batch of pixels; returns it in data space."""
        check_frozen(ctx)
        x = self.randn(self.synth_batch, *self.shape).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=self.lr)
        targets = (torch.arange(self.synth_batch) % self.num_classes).to(x.device)
        bar = None
        if self.progress and self.iters >= 50:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.iters, desc=f"inversion round {self.rounds_done + 1}/{self.batches}", leave=False)
        for _ in range(self.iters):
            dy, dx = (torch.randint(-self.jitter, self.jitter + 1, (2,), generator=self.rng).tolist()
                      if self.jitter else (0, 0))
            flip = self.flip and bool(torch.rand((), generator=self.rng) < 0.5)
            with torch.enable_grad():
                xj = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
                xj = xj.flip(3) if flip else xj
                loss, self.last = self.objective(xj, targets, ctx)
                apply_grads([x], loss)  # pixels of this rank's own batch: no all-reduce
            opt.step()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return self.to_data(x.detach())

    def next_batch(self, step: StepInfo, ctx: RunContext) -> Batch:
        due = min(self.batches, step.step // self.kd_steps + 1)
        while self.rounds_done < due:
            new = self.synthesise(ctx)
            self.pool = new if self.pool is None else torch.cat([self.pool, new])
            if ctx.run_dir is not None and ctx.rank == 0 and self.grid_every > 0:
                save_grid(new, ctx.run_dir / "synthetic" / f"round-{self.rounds_done:04d}.png")
        x = self.pool[self.randint(self.pool.shape[0], self.batch_size).to(self.pool.device)]
        self.maybe_grid(step, ctx, x)
        return self.batch(x)

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "pool": self.pool}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        pool = state.get("pool")
        self.pool = None if pool is None else pool.to(self.norm_mean.device)


class GaussianSource(SyntheticSource):
    """``N(0, std^2)`` images in the teacher-normalised space (the noise-KD control).

    Args:
        std: standard deviation in normalised units (1: the generator's output scale).
        pool: 0 draws fresh noise every step; ``n > 0`` a fixed set of ``n`` images drawn once.
    """

    def __init__(self, ctx: RunContext, *, std: float = 1.0, pool: int = 0, batch_size: int | None = None,
                 grid_every: int | None = None) -> None:
        super().__init__(ctx, batch_size, grid_every, salt=3)
        self.std = float(std)
        self.fixed = self.to_data(self.randn(pool, *self.shape) * self.std) if pool > 0 else None

    def next_batch(self, step: StepInfo, ctx: RunContext) -> Batch:
        if self.fixed is not None:
            x = self.fixed[self.randint(self.fixed.shape[0], self.batch_size).to(self.fixed.device)]
        else:
            x = self.to_data(self.randn(self.batch_size, *self.shape) * self.std)
        self.maybe_grid(step, ctx, x)
        return self.batch(x)


class TensorSource(SyntheticSource):
    """Uniform batches from a fixed image set: a cached synthetic set or out-of-domain images.

    Args:
        images: ``[N, C, H, W]`` in data space (resized to the data's size if they differ).
    """

    def __init__(self, ctx: RunContext, images: Tensor, *, batch_size: int | None = None,
                 grid_every: int | None = None) -> None:
        super().__init__(ctx, batch_size, grid_every, salt=4)
        images = images.float()
        if images.dim() != 4 or images.shape[0] == 0:
            raise ConfigError(f"transfer set: expected images [N, C, H, W], got {tuple(images.shape)}")
        c, h, w = self.shape
        if images.shape[1] != c:
            images = images.mean(1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else images[:, :c]
        if tuple(images.shape[-2:]) != (h, w):
            images = torch.nn.functional.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
        self.register_buffer("images", images.contiguous(), persistent=False)

    def next_batch(self, step: StepInfo, ctx: RunContext) -> Batch:
        x = self.images[self.randint(self.images.shape[0], self.batch_size).to(self.images.device)]
        self.maybe_grid(step, ctx, x)
        return self.batch(x)


__all__ = ["GaussianSource", "GeneratorSource", "PixelSource", "SyntheticSource", "TensorSource", "apply_grads"]
