"""Your own objects in a run: ``nn.Module`` teachers and students, torch ``Dataset``s and ``DataLoader``s.

Models are wrapped in :class:`HookedNet`, which gives any module timm's feature API with forward
hooks, so every strategy (logit, feature, data-free) treats it like a timm model:

- intermediate features are the outputs of named sub-modules (``feature_layers``; default: of the
  model's top-level children that give image-like ``[B, C, H, W]`` maps, the last one at each
  resolution, as timm's stages);
- "pooled" features are the input of the classifier module (``classifier``; default: the last
  ``nn.Linear``), taken with a forward pre-hook.

Inputs reach a user model untouched (no resize, no normalisation) unless its ``input_size``,
``mean`` or ``std`` are given. A teacher object is used as given: frozen, never trained.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .contract.errors import ConfigError, MissingOutput
from .contract.strategy import Batch

USER_DATA = "user"  # data.name of a run on user datasets


class HookedNet(nn.Module):
    """A user's module behind ``forward_intermediates``/``forward_head``/``get_classifier``.

    Args:
        module: the user's network; ``module(x)`` gives logits ``[B, K]``.
        feature_layers: names (as in ``module.named_modules()``) of the intermediate features.
        classifier: name of the final classifier module (its input is the pooled feature).
    """

    def __init__(self, module: nn.Module, feature_layers: list[str], classifier: str | None) -> None:
        super().__init__()
        self.module = module
        modules = dict(module.named_modules())
        for name in [*feature_layers, *([classifier] if classifier else [])]:
            if name not in modules or not name:
                raise ConfigError(f"module {name!r} not found in {type(module).__name__}; valid: "
                                  f"{', '.join(n for n in modules if n)}")
        self.layer_names, self.classifier_name = list(feature_layers), classifier
        self.feature_info: list[dict[str, Any]] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)

    def _run(self, x: Tensor, names: list[str], pooled: bool) -> tuple[Tensor, list[Tensor], Tensor | None]:
        modules = dict(self.module.named_modules())
        captured: dict[str, Tensor] = {}
        handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: captured.__setitem__(n, o)) for n in names]
        if pooled:
            if self.classifier_name is None:
                raise MissingOutput(f"{type(self.module).__name__} has no classifier module (no nn.Linear) to take "
                                    "pooled features from; name one with classifier=")
            handles.append(modules[self.classifier_name].register_forward_pre_hook(
                lambda m, args: captured.__setitem__("__pooled__", args[0])))
        try:
            logits = self.module(x)
        finally:
            for h in handles:
                h.remove()
        return logits, [captured[n] for n in names], captured.get("__pooled__")

    def forward_intermediates(self, x: Tensor, indices: list[int]) -> tuple[Tensor, list[Tensor]]:
        """``(pooled [B, D], [feature maps])`` for the feature layers at ``indices``."""
        _, feats, pooled = self._run(x, [self.layer_names[i] for i in indices], pooled=True)
        return pooled.flatten(1), feats

    def forward_features(self, x: Tensor) -> Tensor:
        return self._run(x, [], pooled=True)[2].flatten(1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.get_classifier()(x)

    def get_classifier(self) -> nn.Module:
        return dict(self.module.named_modules())[self.classifier_name]

    def measure(self, sample: Tensor) -> None:
        """Fill ``feature_info`` (channels, reduction, module name) from one dry forward of ``sample``."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                _, feats, _ = self._run(sample, self.layer_names, pooled=False)
        finally:
            self.train(was_training)
        size = sample.shape[-1]
        self.feature_info = [dict(num_chs=int(f.shape[1]), reduction=size / f.shape[-1] if f.dim() == 4 else 1.0,
                                  module=n) for n, f in zip(self.layer_names, feats)]


def default_layers(module: nn.Module, sample: Tensor) -> tuple[list[str], str | None]:
    """Automatic feature layers (the last top-level child at each ``[B, C, H, W]`` resolution above
    1x1) and the classifier (the last ``nn.Linear``)."""
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    shapes: dict[str, tuple] = {}
    children = list(module.named_children())
    handles = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape))
                                       if isinstance(o, Tensor) else None) for n, m in children]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(sample)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    by_size: dict[tuple, str] = {}
    for name, _ in children:
        shape = shapes.get(name)
        if shape is not None and len(shape) == 4 and shape[2:] != (1, 1):  # 1x1: a global pool, not a stage
            by_size[shape[2:]] = name  # the last child at each resolution
    return list(by_size.values()), (linears[-1] if linears else None)


def wrap_module(module: nn.Module, sample: Tensor, *, name: str, classes: list[str], task: str,
                feature_layers: list[str] | None = None, classifier: str | None = None,
                input_size: list[int] | None = None, mean: list[float] | None = None, std: list[float] | None = None):
    """A :class:`kdzoo.models.KDModel` around a user's module (``sample``: one data-space batch ``[1, ...]``)."""
    from .models.wrapper import KDModel

    shape = list(sample.shape[1:])
    if input_size and len(shape) == 3:
        shape = [shape[0], *input_size]
    probe = sample if len(shape) != 3 else torch.nn.functional.interpolate(sample, size=tuple(shape[1:])) \
        if tuple(shape[1:]) != tuple(sample.shape[2:]) else sample
    auto_layers, auto_classifier = default_layers(module, probe)
    net = HookedNet(module, auto_layers if feature_layers is None else feature_layers, classifier or auto_classifier)
    net.measure(probe)
    meta = {"name": name, "kwargs": {"feature_layers": net.layer_names, "classifier": net.classifier_name},
            "source": "user", "num_classes": len(classes), "input_shape": shape, "mean": mean, "std": std,
            "classes": list(classes), "task": task}
    return KDModel(net, meta)


# -- datasets ---------------------------------------------------------------------------------------
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


@dataclass
class UserObjects:
    """What a Python caller passed to :func:`kdzoo.distill` besides the config."""

    teacher: nn.Module | None = None
    student: nn.Module | None = None
    train: Any = None
    val: Any = None
    test: Any = None

    @property
    def has_data(self) -> bool:
        return self.train is not None


def user_bundle(objects: UserObjects, cfg: Any):
    """A :class:`DatasetBundle` and its :class:`Splits` from user datasets (validation: given, else a
    stratified share of train; test: given, else a stratified share of train)."""
    from sklearn.model_selection import train_test_split

    from .data import DatasetBundle, Splits

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


def student_copy(module: nn.Module) -> nn.Module:
    """Each seed trains its own copy of the student object (the caller's object is left as given)."""
    return copy.deepcopy(module)


__all__ = ["HookedNet", "USER_DATA", "UserLoaderPlan", "UserObjects", "UserSamples", "user_bundle", "wrap_module"]


def from_python(config: Any, *, teacher: Any = None, student: Any = None, train: Any = None, val: Any = None,
                test: Any = None) -> tuple[Any, UserObjects | None]:
    """Split a Python caller's objects from plain config data.

    Modules may come as keyword arguments or in ``config["teacher"]``/``config["student"]`` (a
    module, or ``{"object": module, "input_size": ..., "mean": ..., "std": ..., "kwargs":
    {"feature_layers": [...], "classifier": "fc"}}``). The config then names them ``user:CLASS``
    and ``data.name`` becomes ``user`` when datasets are given.

    Returns:
        ``(config data, objects)``; ``objects`` is ``None`` when nothing but plain data was passed.
    """
    from torch.utils.data import DataLoader, Dataset

    data = dict(config) if isinstance(config, dict) else config
    objects = UserObjects(teacher=teacher, student=student, train=train, val=val, test=test)
    if isinstance(data, dict):
        for role in ("teacher", "student"):
            value = data.get(role)
            if isinstance(value, nn.Module):
                value = {"object": value}
            if isinstance(value, dict) and "object" in value:
                value = dict(value)
                setattr(objects, role, value.pop("object"))
                data[role] = value
    for role in ("teacher", "student"):
        module = getattr(objects, role)
        if module is None:
            continue
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{role}: expected a torch nn.Module, got {type(module).__name__}")
        if data is None:
            data = {}
        if isinstance(data, dict):
            entry = dict(data.get(role) or {}) if not isinstance(data.get(role), str) else {}
            entry.setdefault("name", f"user:{type(module).__name__}")
            data[role] = entry
    for role in ("train", "val", "test"):
        value = getattr(objects, role)
        if value is not None and not isinstance(value, (Dataset, DataLoader)):
            raise ConfigError(f"{role}: expected a torch Dataset or DataLoader, got {type(value).__name__}")
    if objects.has_data and isinstance(data, dict):
        section = data.get("data")
        section = {"name": section} if isinstance(section, str) else dict(section or {})
        section["name"] = USER_DATA
        data["data"] = section
    elif (objects.val is not None or objects.test is not None) and not objects.has_data:
        raise ConfigError("val/test datasets need a train dataset too (train=...)")
    if objects.teacher is None and objects.student is None and not objects.has_data:
        return config, None
    return data, objects
