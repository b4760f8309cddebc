"""What a run config holds: one dataclass per section, with its defaults, bounds and meaning.

:class:`RunConfig` and its sections (model, data, optimiser, budget, runtime, strategy members, the
teacher's training), the seed and thread limits, :func:`switch` (a field left out of cell keys while
at its default), and :func:`data_options` (what the file datasets read from a config). Building these
from plain data is :mod:`kdzoo.config.building`; loading YAML, ``--set`` and validating is
:mod:`kdzoo.config.loading`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..contract.params import bounded


SEED_MAX = 2**32 - 1  # seeds are 32-bit: every generator kdzoo and its plugins seed takes them, offsets included
MAX_THREADS = 4096  # far above any machine, far below what makes torch.set_num_threads overflow
RUN_NAME_MAX = 200  # bytes of a run name: room for the suffixes kdzoo adds within a file name's 255


def switch(default: Any = False) -> Any:
    """A switch added after bench cells and cached teachers had keys: left out of those keys while it
    is at ``default`` (:func:`key_dict`), so existing results stay reusable and only runs that turn
    it on get new keys."""
    return field(default=default, metadata={"keyed_when_set": True})


@dataclass
class ModelConfig:
    """A teacher or student network.

    Attributes:
        name: a timm model name (``test_resnet``) or a registered model (``lenet5``, ``mlp``).
        kwargs: keyword arguments for the model factory (``img_size``, ``patch_size``, widths...).
        checkpoint: weights to load: a kdzoo export, a state dict (``.safetensors``/``.pt``/``.pth``/
            ``.bin``), a timm ``train.py`` checkpoint or a timm/HF folder (see :mod:`kdzoo.models.weights`).
            For a teacher, ``None`` means "train one with ``kdzoo teacher`` settings and cache it";
            a student starts from these weights.
        use_ema: take a timm ``train.py`` checkpoint's EMA weights (``state_dict_ema``) when it has
            them, as timm's own loader does; ``False`` takes ``state_dict``.
        new_head: load ``checkpoint`` into everything but a classifier that does not fit this task
            (a backbone pretrained with another number of classes); that classifier keeps its fresh
            initialisation, as with timm's ``pretrained=True`` and another ``num_classes``. Every
            other tensor must still fit. A teacher fine-tuned with ``teacher_train.finetune`` gets
            this by default.
        input_size: ``[H, W]`` the model is fed; defaults to ``kwargs.img_size`` or the data's size.
        mean: per-channel normalisation mean; defaults to the dataset's.
        std: per-channel normalisation std; defaults to the dataset's.
    """

    name: str = "lenet5"
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    use_ema: bool = True
    input_size: list[int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    new_head: bool = switch()


@dataclass
class DataConfig:
    """Dataset, splits and batching.

    Attributes:
        name: ``digits``, ``mnist5k``, ``diabetes``, ``imagefolder:PATH``, ``mnist``, ...
        root: local root for torchvision datasets (never downloaded).
        split_seed: seed of the stratified train/val/test split, independent of the run seed.
        val_fraction: share of the data held out for validation (model selection).
        test_fraction: share held out for test where the dataset has no official test split.
        labels_per_class: keep only this many labels per class; the rest of train is unlabelled.
        labelled_ratio: share of each batch that is labelled when ``labels_per_class`` is set.
        batch_size: samples per optimiser micro-step (labelled + unlabelled).
        eval_batch_size: samples per evaluation forward.
        augment: ``none``, ``shift`` (random translation by up to ``shift_pixels``, on tensors),
            ``shift-flip`` (the same, then a left-right flip with probability ``hflip``) or ``timm``
            (timm's training transform per image: random-resized-crop, flip and ``auto_augment``;
            streaming path only). Each sample's view is a pure function of (view seed, draw, index),
            so the teacher's outputs on the views are stored once and replayed (the view store).
        shift_pixels: maximum translation of ``augment: shift``/``shift-flip``.
        loader: ``memory`` (tensors in memory, batches built in the main process), ``stream`` (a
            DataLoader with ``num_workers`` workers) or ``auto`` (stream files, user datasets and
            per-image augmentation; keep bundled data in memory).
        num_workers: DataLoader worker processes of the streaming path (0: the main process).
        auto_augment: timm's policy string for ``augment: timm``, e.g. ``rand-m9-mstd0.5`` or
            ``original`` (``None``: no policy).
        hflip: probability of a horizontal flip under ``augment: timm`` or ``shift-flip``.
        crop_scale: ``[min, max]`` area share of timm's random-resized-crop.
        mixup: mixup alpha (0: off); batches get soft targets. Streaming path only.
        cutmix: cutmix alpha (0: off). Streaming path only.
        image_size: ``[H, W]`` view of an image folder (every image is fitted and centre-cropped to
            it; random crops are taken at that size); default: the student's ``input_size``, else
            the median image size.
        download: let torchvision fetch a missing ``mnist``/``fashion-mnist``/``cifar10``/
            ``cifar100`` into ``root`` (kdzoo never downloads otherwise).
        view_seed: seed of the augmented views, independent of the run seed: runs with different
            seeds see the same views in another order, so one view store serves every seed.
        per_seed_views: draw each run seed's views from its own seed (then each seed fills its own
            view store).
    """

    name: str = "mnist5k"
    root: str | None = None
    split_seed: int = bounded(0, ge=0, le=SEED_MAX)
    val_fraction: float = bounded(0.1, gt=0, lt=1)
    test_fraction: float = bounded(0.2, gt=0, lt=1)
    labels_per_class: int | None = bounded(None, ge=1)
    labelled_ratio: float = bounded(0.5, gt=0, le=1)
    batch_size: int = bounded(128, ge=1)
    eval_batch_size: int = bounded(512, ge=1)
    augment: Literal["none", "shift", "shift-flip", "timm"] = "none"
    shift_pixels: int = bounded(2, ge=0)
    loader: Literal["auto", "memory", "stream"] = "auto"
    num_workers: int = bounded(2, ge=0)
    auto_augment: str | None = None
    hflip: float = bounded(0.5, ge=0, le=1)
    crop_scale: list[float] = bounded(ge=0, le=1, default_factory=lambda: [0.08, 1.0])
    mixup: float = bounded(0.0, ge=0)
    cutmix: float = bounded(0.0, ge=0)
    image_size: list[int] | None = bounded(None, ge=1)
    download: bool = False
    view_seed: int = switch(0)
    per_seed_views: bool = switch(False)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (budgets are optimiser steps)."""

    name: Literal["sgd", "adamw"] = "adamw"
    lr: float = bounded(2e-3, gt=0)
    momentum: float = bounded(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = bounded(1e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = bounded(0, ge=0)
    milestones: list[float] = bounded(ge=0, le=1, default_factory=lambda: [0.5, 0.75])
    gamma: float = bounded(0.1, gt=0)
    label_smoothing: float = bounded(0.0, ge=0, lt=1)
    grad_clip: float | None = bounded(None, gt=0)  # None: no clipping
    accumulate: int = bounded(1, ge=1)


@dataclass
class TrainConfig:
    """Budget, evaluation and checkpointing.

    Attributes:
        steps: optimiser steps; wins over ``epochs`` when both are set.
        epochs: passes over the whole train split (labelled + unlabelled), converted to steps.
        eval_every: steps between validation passes (default: once per epoch, or more often so
            that a run has at least 20 evaluations).
        checkpoint_every: steps between checkpoints (default: at every evaluation).
        ema: decay of an exponential moving average of the student (``None``: off).
        seeds: run seeds (distinct, at least one); several seeds give mean ± std.
        nonfinite: a NaN/inf loss ``stop``s the run with one line naming the step and the term,
            or ``skip``s that optimiser step (counted in the metrics log as ``skipped``).
    """

    steps: int | None = bounded(None, ge=1)
    epochs: float | None = bounded(10, gt=0)
    eval_every: int | None = bounded(None, ge=1)
    checkpoint_every: int | None = bounded(None, ge=1)
    ema: float | None = bounded(None, ge=0, lt=1)
    seeds: list[int] = bounded(default_factory=lambda: [0], ge=0, le=SEED_MAX)
    nonfinite: Literal["stop", "skip"] = "stop"


@dataclass
class RuntimeConfig:
    """Where and how the run executes (none of it changes what is computed, only how fast).

    Attributes:
        threads: CPU threads per process (``None``: torch's default).
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when available); under torchrun each rank
            takes ``cuda:LOCAL_RANK``.
        deterministic: ``torch.use_deterministic_algorithms`` (warn-only where none exists).
        progress: show a progress bar (rank 0 only).
        amp: bf16 autocast; ``auto`` is on for CUDA, off for CPU (no bf16 hardware there).
        channels_last: NHWC memory format for image models; ``auto`` is on for convolutional nets.
        compile: ``torch.compile`` the training step and the teacher (pays off for long runs).
        teacher_dtype: run the frozen teacher in ``bfloat16``/``float16`` for faster inference.
        sync_bn: convert the student's BatchNorm to SyncBatchNorm under DDP.
        teacher_cache: ``auto`` reuses teacher outputs across epochs and strategies whenever the
            inputs are deterministic (no augmentation, real data, no gradients through the
            teacher, logits/pooled only); ``off`` always runs the teacher live.
        loggers: experiment trackers that mirror ``metrics.jsonl`` (``tensorboard``, ``mlflow``, or a
            plugin's, see ``register_loggers``).
        tracking_uri: the MLflow tracking URI (``None``: ``sqlite:///OUT/mlflow.db``, embedded).
    """

    threads: int | None = bounded(None, ge=1, le=MAX_THREADS)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    deterministic: bool = True
    progress: bool = True
    amp: Literal["auto", "on", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    teacher_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    sync_bn: bool = False
    teacher_cache: Literal["auto", "off"] = "auto"
    loggers: list[str] = field(default_factory=list)
    tracking_uri: str | None = None


@dataclass
class StrategySpec:
    """One member of the strategy stack: a registered name and its parameters."""

    name: str = "ce"
    params: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None


@dataclass
class TeacherTrainConfig:
    """How ``kdzoo teacher`` trains a teacher that has no checkpoint, or fine-tunes one that has
    (part of its cache key).

    Attributes:
        epochs: passes over the teacher's train split.
        optim: the teacher's optimiser.
        augment: the teacher's augmentation.
        seed: the teacher's run seed (also seeds a ``random_init`` teacher).
        random_init: skip training: the teacher keeps its random initialisation (the control run
            that shows whether what a student gains came from the teacher's training).
        finetune: fine-tune ``teacher.checkpoint`` on the teacher's task before distilling, instead of
            using it as it is: its weights start the teacher (a classifier that does not fit the
            task's classes starts afresh), which then trains with these settings and is cached under
            a key that includes the checkpoint's SHA-256.
    """

    epochs: float = bounded(15, gt=0)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: Literal["none", "shift", "shift-flip", "timm"] = "none"
    seed: int = bounded(0, ge=0, le=SEED_MAX)
    random_init: bool = False
    finetune: bool = switch()


@dataclass
class RunConfig:
    """A whole distillation run.

    Attributes:
        teacher_data: dataset spec the teacher is trained on when it has no checkpoint (default:
            ``data.name``), e.g. ``mnist5k`` for a student on ``mnist5k:mod3``, or
            ``mnist5k:digits[0-4]`` for one on ``mnist5k:digits[5-9]``; every other ``data``
            setting (root, split seed and fractions, batch size) is shared, so tasks of one base
            dataset use the same image partition and the teacher never saw a student test image.
    """

    student: ModelConfig = field(default_factory=ModelConfig)
    teacher: ModelConfig | None = None
    teacher_train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    teacher_data: str | None = None
    strategy: list[StrategySpec] = field(default_factory=lambda: [StrategySpec()])
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    out: str = "runs"
    name: str | None = None
    label_weight: float | None = bounded(None, ge=0)


def data_options(config: RunConfig) -> dict[str, Any]:
    """Options for kdzoo's file datasets: downloads only when asked; an image folder's view size."""
    return {"download": config.data.download, "image_size": config.data.image_size or config.student.input_size}
