"""Element selection: cut a teacher tensor down to a student tensor's shape.

Follows ``uniform_element_selection`` of the official weight-selection code (OscarXZQ/weight-selection,
``weight_selection.py``): every dimension is selected independently with an index set that depends only
on the two sizes ``(T, S)``. Because of that, the same channels are kept on both sides of every residual
connection, in consecutive layers and in a BatchNorm's weight, bias and running statistics
("consistency" in Xu et al. 2024).

Index rule per dimension (``T`` teacher size, ``S`` student size, ``S <= T``):
    uniform      ``T % S == 0``: ``0, k, 2k, ...`` with ``k = T // S`` (as in the official code);
                 otherwise ``round(linspace(0, T - 1, S))``. The official code writes
                 ``linspace(0, T, S)``, which can index ``T`` (out of range) and is never reached by its
                 own model pairs; ``T - 1`` is the evident intent.
    consecutive  ``0, 1, ..., S - 1`` (the paper's "consecutive" ablation).
    none         sizes must be equal (whole-tensor copy only).

Two layouts are handled explicitly instead of being cut blindly:
    fused projections  timm's ``attn.qkv`` (``[3 * D, D]``) and ``kv`` rows are selected inside each of
                       the 3 (2) blocks, so q, k and v stay q, k and v for any width ratio.
    position embedding ``pos_embed`` ``[1, N, D]``: the token axis is never subsampled; a different
                       patch grid is resampled with ``timm.layers.resample_abs_pos_embed``.

Known limitation (shared with the official code): a ``Linear`` fed by a flattened ``C x H x W`` map
(LeNet-5's ``pre_head``) is cut along the flattened axis, which does not match the channels kept by
the conv before it; timm models pool before their linear layers, so this does not arise there.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

ElementMode = Literal["uniform", "consecutive", "none"]
FUSED_PROJECTIONS = {"qkv": 3, "kv": 2}


class NotSelectable(Exception):
    """A teacher tensor cannot be cut to the student's shape; the message says why."""


def element_indices(teacher_size: int, student_size: int, mode: ElementMode) -> Tensor:
    """Teacher indices kept along one dimension.

    Args:
        teacher_size: ``T``, the teacher's size of this dimension.
        student_size: ``S <= T``, the student's size.
        mode: ``uniform``, ``consecutive`` or ``none``.

    Returns:
        ``[S]`` long tensor of sorted, distinct indices into ``range(T)``.
    """
    if student_size > teacher_size:
        raise NotSelectable(f"student is larger ({student_size} > {teacher_size})")
    if teacher_size == student_size:
        return torch.arange(student_size)
    if mode == "none":
        raise NotSelectable(f"sizes differ ({teacher_size} -> {student_size}) and element selection is 'none'")
    if mode == "consecutive":
        return torch.arange(student_size)
    if teacher_size % student_size == 0:
        return torch.arange(student_size) * (teacher_size // student_size)
    if student_size == 1:
        return torch.zeros(1, dtype=torch.long)
    return torch.tensor([math.floor(i * (teacher_size - 1) / (student_size - 1) + 0.5) for i in range(student_size)])


def select_elements(teacher: Tensor, shape: tuple[int, ...], mode: ElementMode, fused: int = 1) -> Tensor:
    """Cut ``teacher`` to ``shape`` dimension by dimension.

    Args:
        teacher: any-rank teacher tensor, e.g. a conv weight ``[C_out, C_in, k, k]``.
        shape: the student tensor's shape (same rank).
        mode: element-selection rule of every dimension.
        fused: ``> 1`` when dimension 0 stacks that many equal blocks (fused ``qkv``: 3); the
            selection then runs inside each block.

    Returns:
        A new tensor of ``shape``.
    """
    if teacher.dim() != len(shape):
        raise NotSelectable(f"rank differs (teacher {tuple(teacher.shape)}, student {tuple(shape)})")
    if teacher.dim() == 4 and teacher.shape[2:] != tuple(shape[2:]):
        raise NotSelectable(f"kernel size differs (teacher {tuple(teacher.shape[2:])}, student {tuple(shape[2:])})")
    out = teacher.detach()
    if fused > 1 and out.dim() >= 1 and out.shape[0] % fused == 0 and shape[0] % fused == 0:
        blocks = out.reshape(fused, out.shape[0] // fused, *out.shape[1:])
        blocks = _select_dims(blocks, (fused, shape[0] // fused, *shape[1:]), mode, first_dim=1)
        return blocks.reshape(shape).clone()
    return _select_dims(out, tuple(shape), mode).clone()


def _select_dims(t: Tensor, shape: tuple[int, ...], mode: ElementMode, first_dim: int = 0) -> Tensor:
    for dim in range(first_dim, t.dim()):
        try:
            idx = element_indices(t.shape[dim], shape[dim], mode)
        except NotSelectable as exc:
            raise NotSelectable(f"dim {dim - first_dim}: {exc}") from None
        if len(idx) != t.shape[dim]:
            t = t.index_select(dim, idx.to(t.device))
    return t


def select_pos_embed(teacher: Tensor, shape: tuple[int, ...], mode: ElementMode, teacher_grid: tuple[int, int] | None,
                     student_grid: tuple[int, int] | None) -> tuple[Tensor, str]:
    """A student position embedding from the teacher's: tokens kept or resampled, width selected.

    Args:
        teacher: ``[1, N_T, D_T]`` (prefix tokens such as ``cls`` first, then the patch grid).
        shape: the student's ``(1, N_S, D_S)``.
        mode: element selection of the embedding width.
        teacher_grid: the teacher's patch grid ``(H_T, W_T)``, needed only when ``N_T != N_S``.
        student_grid: the student's patch grid ``(H_S, W_S)``.

    Returns:
        The ``[1, N_S, D_S]`` tensor and a note for the report.
    """
    if teacher.dim() != 3 or len(shape) != 3:
        raise NotSelectable(f"unexpected pos_embed rank (teacher {tuple(teacher.shape)}, student {tuple(shape)})")
    pos, note = teacher.detach(), "tokens kept"
    if pos.shape[1] != shape[1]:
        if teacher_grid is None or student_grid is None:
            raise NotSelectable(f"token count differs ({pos.shape[1]} -> {shape[1]}) and the patch grids are unknown")
        t_prefix = pos.shape[1] - teacher_grid[0] * teacher_grid[1]
        s_prefix = shape[1] - student_grid[0] * student_grid[1]
        if t_prefix != s_prefix or t_prefix < 0:
            raise NotSelectable(f"prefix tokens differ (teacher {t_prefix}, student {s_prefix})")
        from timm.layers import resample_abs_pos_embed

        pos = resample_abs_pos_embed(pos, new_size=list(student_grid), old_size=list(teacher_grid),
                                     num_prefix_tokens=t_prefix, verbose=False)
        note = f"patch grid {teacher_grid[0]}x{teacher_grid[1]} resampled to {student_grid[0]}x{student_grid[1]}"
    idx = element_indices(pos.shape[2], shape[2], mode)
    return pos.index_select(2, idx.to(pos.device)).clone(), note


__all__ = [
    "ElementMode", "FUSED_PROJECTIONS", "NotSelectable", "element_indices", "select_elements", "select_pos_embed",
]
