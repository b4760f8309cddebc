"""Augmented views as a pure function of (view seed, draw, sample index).

A sample's ``draw`` is the pass of its pool (labelled or unlabelled) in which the batch plan takes
it: draw 0 in the pool's first permutation, 1 in the second, and so on. Its view depends on
nothing else (not on the batch it lands in, the step, the worker or the run seed), so

* a resumed run, or a replay, sees exactly the views an uninterrupted run saw;
* the teacher's outputs for ``(sample, draw)`` can be computed once, stored and replayed
  (:mod:`kdzoo.train.view_store`), by any run that draws the same views.

The view seed is ``data.view_seed`` (0 by default), independent of the run seed, so runs with
different seeds see the same views in a different order and one view store serves every seed;
``data.per_seed_views`` mixes the run seed in (each seed its own views, and its own store).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
SALT_SHIFT_Y, SALT_SHIFT_X, SALT_FLIP, SALT_SEED = 1, 2, 3, 4


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective scramble of 64-bit integers (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _u64(v) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).astype(np.uint64)


def view_bits(seed: int, draw: Tensor | np.ndarray | int, index: Tensor | np.ndarray, salt: int) -> np.ndarray:
    """64 random bits per sample, a pure function of ``(seed, draw, index, salt)`` (``uint64 [B]``)."""
    index = _u64(index.cpu().numpy() if isinstance(index, Tensor) else index)
    draw = _u64(draw.cpu().numpy() if isinstance(draw, Tensor) else draw)
    z = _mix(_mix(_mix(np.uint64(int(seed) % 2**64)) ^ draw) ^ index)
    return _mix(z ^ _u64(salt))


def _uniform(bits: np.ndarray) -> np.ndarray:
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def effective_view_seed(view_seed: int, run_seed: int, per_seed: bool) -> int:
    """The seed views are drawn from: ``view_seed``, or mixed with the run seed under per-seed views."""
    if not per_seed:
        return int(view_seed)
    return int(view_bits(view_seed, 0, np.asarray([run_seed]), SALT_SEED)[0] >> np.uint64(1))


def sample_seeds(seed: int, draw: Tensor, index: Tensor) -> list[int]:
    """One 31-bit seed per sample for transforms that draw from global generators (timm's)."""
    return [int(b >> np.uint64(33)) for b in view_bits(seed, draw, index, SALT_SEED)]


def shift_flip(x: Tensor, index: Tensor, draw: Tensor, seed: int, pixels: int, flip: float) -> Tensor:
    """Each image translated by an integer offset in ``[-pixels, pixels]`` (zero fill), then flipped
    left-right with probability ``flip``; every choice a pure function of (seed, draw, index).

    Args:
        x: images ``[B, C, H, W]``.
        index: dataset indices ``[B]``.
        draw: each sample's draw ``[B]``.
        seed: the view seed.
        pixels: largest translation.
        flip: probability of a horizontal flip (0: never).
    """
    b, _, h, w = x.shape
    if pixels > 0:
        span = np.uint64(2 * pixels + 1)
        oy = torch.from_numpy((view_bits(seed, draw, index, SALT_SHIFT_Y) % span).astype(np.int64))
        ox = torch.from_numpy((view_bits(seed, draw, index, SALT_SHIFT_X) % span).astype(np.int64))
        padded = torch.nn.functional.pad(x, (pixels,) * 4)
        rows = (oy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # [B, 1, H, 1]
        cols = (ox[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # [B, 1, 1, W]
        batch = torch.arange(b)[:, None, None, None]
        chans = torch.arange(x.shape[1])[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if flip > 0:
        flipped = torch.from_numpy(_uniform(view_bits(seed, draw, index, SALT_FLIP)) < flip)
        if flipped.any():
            x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


__all__ = ["effective_view_seed", "sample_seeds", "shift_flip", "view_bits"]
