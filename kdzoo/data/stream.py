"""The streaming path: a DataLoader with workers behind the same ``plan.batch(step)`` as the in-memory plan.

Each loader item is one whole micro-batch (batched fetching): worker ``w`` builds the batch of
micro-step ``s`` from :meth:`BatchPlan.locate` (which samples, in which draw: a pure function of the
run seed and the step) and each sample's view seed (a pure function of view seed, draw and index). A resumed run (or any
jump to another step) restarts the loader at that step and sees exactly the batches an
uninterrupted run would have seen, whatever the number of workers.

Transforms yield ``[0, 1]`` tensors at the data's view size; each model's own resize and
normalisation stay in :meth:`kdzoo.models.KDModel.preprocess`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import DataConfig
from ..contract.errors import ConfigError
from ..contract.strategy import Batch
from .memory import BatchPlan, DatasetBundle, to_float
from .views import sample_seeds
from .files import fit_and_crop

STREAMED = {"mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"}  # read from files
# ``auto`` keeps a file dataset in memory when its decoded inputs take at most this much: worker processes
# cost more than they save on small data (a 1,000-image folder: 35 CPU s a seed streamed, 7.6 in memory)
AUTO_MEMORY_BYTES = 256 * 2**20


def use_streaming(cfg: DataConfig, user_data: bool = False, bundle: DatasetBundle | None = None) -> bool:
    """Whether a run takes the streaming path (``data.loader``). ``auto`` streams your own datasets,
    per-sample augmentation (``augment: timm``, mixup, cutmix) and file datasets too big for memory
    (decoded inputs over :data:`AUTO_MEMORY_BYTES`, or of unknown size); the rest stays in memory."""
    if cfg.loader != "auto":
        return cfg.loader == "stream"
    if user_data or cfg.augment == "timm" or cfg.mixup or cfg.cutmix:
        return True
    if cfg.name.partition(":")[0] not in STREAMED:
        return False
    return bundle is None or input_bytes(bundle) > AUTO_MEMORY_BYTES


def input_bytes(bundle: DatasetBundle) -> int:
    """Bytes of every input sample decoded (train and official test), from the shapes alone: nothing is read."""
    total = 0
    for x in (bundle.x, bundle.test_x):
        if x is not None:
            size = getattr(x.dtype, "itemsize", 4)
            total += int(np.prod(tuple(x.shape))) * size
    return total


def is_random_augmentation(cfg: DataConfig) -> bool:
    """Whether a sample's input differs between epochs (then teacher outputs cannot be cached)."""
    return cfg.augment != "none" or bool(cfg.mixup or cfg.cutmix)


def build_train_transform(cfg: DataConfig, channels: int, size: tuple[int, int]):
    """timm's training transform (random-resized-crop, flip, optional RandAugment/AutoAugment) to a
    ``[0, 1]`` tensor ``[C, H, W]``: normalisation is the identity here (each model normalises itself).
    """
    from timm.data import create_transform

    return create_transform(input_size=(channels, *size), is_training=True, scale=tuple(cfg.crop_scale),
                            hflip=cfg.hflip, auto_augment=cfg.auto_augment, interpolation="bilinear",
                            mean=(0.0,) * channels, std=(1.0,) * channels)


def to_pil(bundle: DatasetBundle, i: int):
    """Sample ``i`` as a PIL image (``L`` for one channel, ``RGB`` for three)."""
    from PIL import Image

    x = bundle.x
    if hasattr(x, "pil"):
        return x.pil(i)
    img = x[i]
    if img.dtype != torch.uint8:
        img = (img.float().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = img.numpy()
    return Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")


def seed_everything(seed: int) -> None:
    """Seed every generator a transform may draw from (python, numpy, torch) in this process."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Restore python's, numpy's and torch's global generators on exit."""
    py, npy = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


class PlannedBatches(Dataset):
    """Map-style dataset whose item ``s`` is the whole micro-batch of micro-step ``s``.

    Args:
        plan: the stateless batch plan (which samples, augmentation seeds).
        transform: a per-sample PIL transform (``augment: timm``), or ``None`` for the plan's own
            tensor path (``none``/``shift``, fetched as one batch).
        mixup: a ``timm.data.Mixup`` applied to each batch, or ``None``.
    """

    def __init__(self, plan: BatchPlan, transform: Any = None, mixup: Any = None) -> None:
        self.plan, self.transform, self.mixup = plan, transform, mixup

    def views(self, index: Tensor, draw: Tensor) -> Tensor:
        """The views of samples ``index`` in draws ``draw``: each a pure function of (view seed, draw, index)."""
        if self.transform is None:
            return self.plan.views(index, draw)
        xs = []
        with _global_rng_kept():  # a fill in the training process must not move the run's own generators
            for i, seed in zip(index.tolist(), sample_seeds(self.plan.view_seed, draw, index)):
                seed_everything(seed)  # per (view seed, draw, sample): independent of batch, step and worker
                xs.append(self.transform(to_pil(self.plan.bundle, i)))
        return torch.stack(xs)

    def __len__(self) -> int:  # endless: the sampler decides which steps are read
        return 2**62

    def __getitem__(self, step: int) -> Batch:
        plan = self.plan
        if self.transform is None:
            batch = plan.batch(step)
        else:
            index, draw, labelled = plan.locate(step)
            batch = Batch(x=self.views(index, draw), y=plan.targets(index, labelled), labelled=labelled, index=index,
                          draw=draw)
        if self.mixup is not None:
            seed_everything(hash((plan.augment_seed(step), -1)) & 0x7FFFFFFF)  # ints only: str hashes vary by process
            x, y = self.mixup(batch.x, batch.y)
            batch = Batch(x=x, y=y, labelled=batch.labelled, index=batch.index)  # mixed: no longer one view per sample
        return batch


class _StepsFrom:
    """Sampler of micro-steps ``start, start + 1, ...`` (the loader is restarted on any jump)."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self):
        step = self.start
        while True:
            yield step
            step += 1


def _one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)  # workers fetch and transform; the main process computes


class StreamingPlan:
    """The batch plan behind a DataLoader with workers: ``batch(step)`` as :class:`BatchPlan`.

    Args:
        plan: the in-memory plan that decides samples and seeds (it reads nothing until asked).
        cfg: the data config (``num_workers``, ``augment``, ``mixup``/``cutmix``).
        num_classes: classes of the task (mixup's soft targets).
        pin_memory: pin batches for faster host-to-GPU copies.
    """

    def __init__(self, plan: BatchPlan, cfg: DataConfig, num_classes: int, pin_memory: bool = False) -> None:
        self.plan, self.cfg, self.pin_memory = plan, cfg, pin_memory
        bundle = plan.bundle
        transform = None
        if cfg.augment == "timm":
            if bundle.x.dim() != 4:
                raise ConfigError(f"data.augment=timm needs images; {bundle.name!r} gives vectors (use none)")
            transform = build_train_transform(cfg, bundle.x.shape[1], tuple(bundle.x.shape[2:]))
        elif cfg.augment == "none" and hasattr(bundle.x, "pil"):
            transform = _view(bundle)
        mixup = None
        if cfg.mixup or cfg.cutmix:
            mixup = _mixup(cfg, bundle, plan, num_classes)
        self.batches = PlannedBatches(plan, transform, mixup)
        self._iter = None
        self._next = -1

    def views(self, index: Tensor, draw: Tensor) -> Tensor:
        """The views of samples ``index`` in draws ``draw``, computed in this process (the view store's fill)."""
        return self.batches.views(index, draw)

    def batch(self, step: int) -> Batch:
        """The micro-batch of micro-step ``step`` (the loader restarts there if it was elsewhere)."""
        if self._iter is None or step != self._next:
            self._start(step)
        batch = next(self._iter)
        self._next = step + 1
        return batch

    def _start(self, step: int) -> None:
        self.close()
        workers = self.cfg.num_workers
        loader = DataLoader(self.batches, batch_size=None, sampler=_StepsFrom(step), num_workers=workers,
                            pin_memory=self.pin_memory, prefetch_factor=4 if workers else None,
                            worker_init_fn=_one_thread if workers else None)
        self._iter = iter(loader)
        self._next = step

    def close(self) -> None:
        """Stop the workers (a later ``batch`` starts new ones)."""
        if self._iter is not None:
            shutdown = getattr(self._iter, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._iter = None


def _view(bundle: DatasetBundle):
    """Files without augmentation: each image fitted and centre-cropped to the view size, in [0, 1]."""
    size = tuple(bundle.x.shape[2:])
    return lambda img: to_float(fit_and_crop(img, size))


def _mixup(cfg: DataConfig, bundle: DatasetBundle, plan: BatchPlan, num_classes: int):
    from timm.data import Mixup

    if bundle.task != "classification":
        raise ConfigError(f"data.mixup/data.cutmix need classification data; {bundle.name!r} is {bundle.task}")
    if cfg.labels_per_class is not None:
        raise ConfigError("data.mixup/data.cutmix need every sample labelled; unset data.labels_per_class")
    if cfg.batch_size % 2:
        raise ConfigError(f"data.mixup/data.cutmix need an even data.batch_size, got {cfg.batch_size}")
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=0.0, num_classes=num_classes)


def make_plan(bundle: DatasetBundle, splits: Any, cfg: DataConfig, seed: int, use_unlabelled: bool,
              target_norm: tuple[Tensor, Tensor] | None = None, user_data: bool = False,
              pin_memory: bool = False) -> BatchPlan | StreamingPlan:
    """The run's batch plan: in memory, or streamed through a DataLoader (:func:`use_streaming`)."""
    plan = BatchPlan(bundle, splits, cfg, seed, use_unlabelled, target_norm)
    if not use_streaming(cfg, user_data, bundle):
        if cfg.augment == "timm" or cfg.mixup or cfg.cutmix:
            raise ConfigError(f"data.augment={cfg.augment!r}/mixup/cutmix run on the streaming path; "
                              "set data.loader=stream (or auto)")
        return plan
    return StreamingPlan(plan, cfg, len(bundle.classes), pin_memory)


__all__ = ["AUTO_MEMORY_BYTES", "PlannedBatches", "StreamingPlan", "build_train_transform", "input_bytes",
           "is_random_augmentation", "make_plan", "use_streaming"]
