"""Datasets, splits and batch plans: the in-memory path and the streaming path behind one interface.

The trainer only calls ``plan.batch(step)``; :func:`make_plan` gives a :class:`BatchPlan` (tensors in
memory) or a :class:`StreamingPlan` (a DataLoader with workers and timm transforms). Every name
plugins imported from the former ``kdzoo.data`` module is still importable from here.

Public (a tool door, like :mod:`kdzoo.losses`): the names in ``__all__``, what a plugin or your own
code uses to load a dataset, split it and feed its tensors to a model. The other names are internal.
"""

from __future__ import annotations

from .fingerprint import data_fingerprint, data_identity, data_sources
from .files import FASHION_CLASSES, LazyImages, cifar_loader, idx_loader, load_imagefolder, read_data_pickle, read_idx
from .memory import (ALIASES, TAKES_ARG, TAKES_OPTIONS, BatchPlan, DatasetBundle, Splits, channel_stats, eval_chunks,
                     load_diabetes, load_digits, load_mnist5k, load_dataset, make_splits, random_shift, steps_per_epoch,
                     to_float)
from .stream import (PlannedBatches, StreamingPlan, build_train_transform, is_random_augmentation, make_plan,
                     use_streaming)
from .relabel import read_class_map, validate_class_map

MNIST_CLASSES = [f"{d} - {w}" for d, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven",
                                                     "eight", "nine"])]

BUILTIN_DATASETS = {
    "digits": (load_digits, "classification"),
    "mnist5k": (load_mnist5k, "classification"),
    "diabetes": (load_diabetes, "regression"),
    "imagefolder": (load_imagefolder, "classification"),
    "mnist": (idx_loader("mnist", "MNIST", MNIST_CLASSES), "classification"),
    "fashion-mnist": (idx_loader("fashion-mnist", "FashionMNIST", FASHION_CLASSES), "classification"),
    "cifar10": (cifar_loader("cifar10"), "classification"),
    "cifar100": (cifar_loader("cifar100"), "classification"),
}

__all__ = [
    "DatasetBundle", "Splits", "eval_chunks", "load_dataset", "make_splits", "read_class_map", "to_float",
    "validate_class_map",
]
