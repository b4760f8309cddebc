"""Your own torch ``Dataset``s and ``DataLoader``s in a run: the data half of :mod:`kdzoo.user`.

Owns reading a user dataset's samples and targets (:class:`UserSamples`, :func:`targets_of`), the
dataset bundle and splits built from them (:func:`user_bundle`), and the batch plan that draws
batches from a user's ``DataLoader`` (:class:`UserLoaderPlan`). ``kdzoo.user`` re-exports these names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..contract.errors import ConfigError
from ..contract.strategy import Batch
from .memory import DatasetBundle, Splits

USER_DATA = "user"  # data.name of a run on user datasets


class UserSamples:
    """A user ``Dataset``'s inputs behind a tensor-like view (``samples[indices]`` stacks them as float).

    Args:
        datasets: one or more datasets read as one (train then validation); items are
            ``(input, target)``.
    """

    dtype = torch.float32

    def __init__(self, datasets: list[Any]) -> None:
        self.datasets = list(datasets)
        self.deterministic = all(is_deterministic(d) for d in self.datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        first = self.item(0)
        self._shape = tuple(first.shape)

    def item(self, i: int) -> Tensor:
        part = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return as_input(self.datasets[part][i - int(self.offsets[part])][0])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self._shape))

    def dim(self) -> int:
        return 1 + len(self._shape)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.tolist()
        positions = [int(i) for i in np.asarray(index).reshape(-1)]
        return torch.stack([self.item(i) for i in positions]) if positions else torch.zeros((0, *self._shape))


def is_deterministic(dataset: Any) -> bool:
    """Whether a Dataset's items never change between reads, so teacher outputs on them can be cached.

    A dataset says so with a ``kdzoo_deterministic`` attribute (``True``/``False``); otherwise one
    with torchvision's transform attributes all ``None`` (read as stored) counts as deterministic, and
    any other may augment its items.
    """
    declared = getattr(dataset, "kdzoo_deterministic", None)
    if declared is not None:
        return bool(declared)
    names = ("transform", "transforms", "target_transform")
    present = [n for n in names if hasattr(dataset, n)]
    return bool(present) and all(getattr(dataset, n) is None for n in present)


def as_input(x: Any) -> Tensor:
    """One sample as a float tensor. A PIL image (a torchvision dataset read in place, without a
    transform) becomes ``[C, H, W]`` in [0, 1], as torchvision's ``ToTensor`` makes it; tensors and
    arrays are taken as they are."""
    if type(x).__module__.startswith("PIL."):
        array = np.array(x, copy=True)
        t = torch.from_numpy(array)
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
        return t.float() / 255 if array.dtype == np.uint8 else t.float()
    return torch.as_tensor(x).float()


def dataset_of(data: Any) -> Any:
    """The ``Dataset`` behind a ``DataLoader`` (or the dataset itself)."""
    from torch.utils.data import DataLoader

    return data.dataset if isinstance(data, DataLoader) else data


def targets_of(dataset: Any, role: str) -> Tensor:
    """Class ids of every sample: the dataset's ``targets``, else read item by item."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [dataset[i][1] for i in range(len(dataset))]
    y = torch.as_tensor(np.asarray(targets))
    if y.dim() != 1 or y.is_floating_point():
        raise ConfigError(f"{role} dataset: targets must be one class id per sample, got shape {tuple(y.shape)} "
                          f"{y.dtype}")
    return y.long()


def user_bundle(objects: Any, cfg: Any):
    """A :class:`DatasetBundle` and its :class:`Splits` from user datasets (validation: given, else a
    stratified share of train; test: given, else a stratified share of train)."""
    from sklearn.model_selection import train_test_split


    train, val, test = (dataset_of(d) for d in (objects.train, objects.val, objects.test))
    y_train = targets_of(train, "train")
    classes = getattr(train, "classes", None)
    classes = [str(c) for c in classes] if classes else [str(c) for c in range(int(y_train.max()) + 1)]
    parts = [train] + ([val] if val is not None else [])
    y = torch.cat([y_train] + ([targets_of(val, "validation")] if val is not None else []))
    n = len(train)
    rest = np.arange(n)
    test_idx, official = None, test is not None
    if not official:
        rest, test_idx = train_test_split(rest, test_size=cfg.test_fraction, random_state=cfg.split_seed,
                                          stratify=y_train.numpy())
    if val is not None:
        train_idx, val_idx = rest, np.arange(n, n + len(val))
    else:
        share = cfg.val_fraction / (1.0 if official else 1.0 - cfg.test_fraction)
        train_idx, val_idx = train_test_split(rest, test_size=share, random_state=cfg.split_seed + 1,
                                              stratify=y_train.numpy()[rest])
    bundle = DatasetBundle(UserSamples(parts), y, classes=classes, name=USER_DATA,
                           test_x=UserSamples([test]) if official else None,
                           test_y=targets_of(test, "test") if official else None)
    if official:
        test_idx = np.arange(len(test))
    train_idx = np.sort(train_idx)
    splits = Splits(train_idx, np.sort(val_idx), np.sort(test_idx), train_idx, np.array([], dtype=np.int64), official)
    return bundle, splits


class UserLoaderPlan:
    """Batches from the user's own ``DataLoader``, cycled over epochs; ``batch(step)`` as any plan.

    A resumed run continues by step count on a fresh iterator: not the exact batches an
    uninterrupted run would have seen (a warning says so).
    """

    def __init__(self, loader: Any, log=print) -> None:
        self.loader, self.log = loader, log
        self._iter, self._next = None, -1

    def batch(self, step: int) -> Batch:
        if self._iter is None or step != self._next:
            if step:
                self.log(f"warning: your own DataLoader resumes by step count (step {step}) on a fresh iterator; "
                         "the batches are not exactly those of an uninterrupted run")
            self._iter = iter(self.loader)
        try:
            x, y = next(self._iter)[:2]
        except StopIteration:  # next epoch
            self._iter = iter(self.loader)
            x, y = next(self._iter)[:2]
        self._next = step + 1
        x, y = torch.as_tensor(x).float(), torch.as_tensor(y).long()
        return Batch(x=x, y=y, labelled=torch.ones(len(y), dtype=torch.bool),
                     index=torch.full((len(y),), -1, dtype=torch.long))

    def close(self) -> None:
        self._iter = None


__all__ = ["USER_DATA", "UserLoaderPlan", "UserSamples", "as_input", "dataset_of", "is_deterministic", "targets_of",
           "user_bundle"]
