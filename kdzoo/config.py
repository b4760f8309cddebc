"""Typed, validated run configuration: YAML (loaded safely) or flags, with dotted overrides.

Every section is a dataclass; :func:`build` turns plain dicts into them, rejecting unknown keys
and values of the wrong type with one line that names the bad key and the closest valid ones.
Nothing named in a config is ever imported.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from . import safe_yaml
from .contract.errors import ConfigError, unknown
from .contract.params import _range_text, bounded, check_value, param, param_help, param_range  # noqa: F401 - re-exported


SEED_MAX = 2**32 - 1  # seeds are 32-bit: every generator kdzoo and its plugins seed takes them, offsets included
MAX_THREADS = 4096  # far above any machine, far below what makes torch.set_num_threads overflow
RUN_NAME_MAX = 200  # bytes of a run name: room for the suffixes kdzoo adds within a file name's 255


def switch(default: Any = False) -> Any:
    """A switch added after bench cells and cached teachers had keys: left out of those keys while it
    is at ``default`` (:func:`key_dict`), so existing results stay reusable and only runs that turn
    it on get new keys."""
    return field(default=default, metadata={"keyed_when_set": True})


def key_dict(obj: Any) -> Any:
    """:func:`to_dict` for hashing: like it, minus :func:`switch` fields at their default."""
    if not dataclasses.is_dataclass(obj):
        if isinstance(obj, (list, tuple)):
            return [key_dict(v) for v in obj]
        return to_dict(obj)
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("keyed_when_set") and value == f.default:
            continue
        out[f.name] = key_dict(value) if dataclasses.is_dataclass(value) or isinstance(value, (list, tuple)) \
            else copy.deepcopy(value)
    return out


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


# -- building dataclasses from plain data ---------------------------------------------------------
def build(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` (a dict), validating every key and type.

    Raises:
        ConfigError: naming the dotted key, the bad value and the valid choices.
    """
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise unknown("config key", f"{path}{key}", [f"{path}{n}" for n in names])
    kwargs = {key: _coerce(hints[key], value, f"{path}{key}") for key, value in data.items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in kwargs.items():
        if not dataclasses.is_dataclass(value):
            check_value(value, fields[key].metadata.get("bounds"), f"{path}{key}")
    return cls(**kwargs)


def check_defaults(cls: type, path: str = "") -> None:
    """Check that every default of dataclass ``cls`` is what :func:`build` would accept for its field.

    A default is held to the same rules as a value from YAML or the CLI: its type (a default that
    would be converted, e.g. the string ``"0.5"`` for a ``float``, is refused too) and its bounds.

    Raises:
        ConfigError: naming the field, the bad default and the expected type.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if dataclasses.is_dataclass(value):
            check_defaults(type(value), f"{path}{f.name}.")
            continue
        try:
            coerced = _coerce(hints[f.name], value, f"{path}{f.name}")
        except ConfigError:
            coerced = None
        if coerced is None and value is not None or (
                type(coerced) is not type(value) and not (isinstance(coerced, float) and type(value) is int)):
            raise ConfigError(f"{path}{f.name}: default {value!r} is a {type(value).__name__}, "
                              f"not a {_type_name(hints[f.name])}")
        check_value(value, f.metadata.get("bounds"), f"{path}{f.name}")


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and "off" in args:  # YAML 1.1 reads on/off as booleans
            value = "on" if value else "off"
        if value not in args:
            raise unknown(f"value for {path}", value, [str(a) for a in args])
        return value
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [v for v in str(value).split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, f"{path}.")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.lstrip("-").isdigit()):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    return value


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (for YAML, hashing and the run directory)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config safely (data only: no tags, nothing imported)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = safe_yaml.load(f)
    except safe_yaml.StrictYAMLError as exc:  # a repeated key (with its line), an alias bomb
        raise ConfigError(f"config file {str(path)!r}: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory; pass a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (a YAML file is expected)") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def parse_strategy(value: Any) -> list[dict]:
    """Normalise ``"a+b"``, ``"kd"``, ``{name, params}`` or a list of them to a list of dicts."""
    if isinstance(value, str):
        return [{"name": part.strip()} for part in value.split("+") if part.strip()]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        out: list[dict] = []
        for item in value:
            out.extend(parse_strategy(item))
        return out
    raise ConfigError(f"strategy: expected a name, 'a+b', or a list of {{name, params}}, got {value!r}")


def set_dotted(data: dict, dotted: str) -> None:
    """Apply one ``--set key.sub=value`` override in place (the value is parsed as YAML)."""
    if "=" not in dotted:
        raise ConfigError(f"--set {dotted!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
    key, raw = dotted.split("=", 1)
    try:
        value = safe_yaml.load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:  # e.g. a !!python tag: data only, never code
        raise ConfigError(f"--set {dotted!r}: the value is not plain YAML data ({str(exc).splitlines()[0]})") from None
    parts = key.strip().split(".")
    if parts[0] == "strategy" and len(parts) >= 2:
        # strategy.<name or index>.<param>=v sets a member's params
        members = data.setdefault("strategy", [{"name": "ce"}])
        data["strategy"] = members = parse_strategy(members)
        names = [m.get("name", "?") for m in members]
        target = next((m for i, m in enumerate(members)
                       if parts[1] in (m.get("name"), str(m.get("name")).rpartition(":")[2], str(i))), None)
        if target is not None and len(parts) == 2:
            raise ConfigError(f"--set {dotted!r}: name a parameter, e.g. strategy.{parts[1]}.temperature=4")
        close = difflib.get_close_matches(parts[1], names, n=1, cutoff=0.6) if len(parts) >= 3 else []
        if target is None and close:  # strategy.kdd.x: a misspelt member, not a parameter named kdd
            raise ConfigError(f"--set {dotted!r}: the stack has no member {parts[1]!r} ({', '.join(names)}); did you "
                              f"mean {close[0]!r}? e.g. strategy.{close[0]}.{'.'.join(parts[2:])}={raw.strip()}")
        if target is not None:
            param_path = parts[2:]
        elif len(members) == 1:  # a one-member stack: strategy.PARAM means that member's parameter
            target, param_path = members[0], parts[1:]
        elif len(parts) >= 3:  # strategy.X.param with X no member: X was meant as a member's name
            raise ConfigError(f"--set {dotted!r}: the stack has no member {parts[1]!r} ({', '.join(names)}); "
                              f"name one, e.g. strategy.{names[-1]}.{'.'.join(parts[2:])}={raw.strip()}")
        else:
            raise ConfigError(f"--set {dotted!r}: the stack has {len(members)} members ({', '.join(names)}); "
                              f"name one, e.g. strategy.{names[-1]}.{'.'.join(parts[1:])}={raw.strip()}")
        node = target.setdefault("params", {})
        for part in param_path[:-1]:
            node = node.setdefault(part, {})
        node[param_path[-1]] = value
        return
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted!r}: {part!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def pin_strategies(data: dict, plugins: Any) -> None:
    """Apply a config's ``plugins.prefer: {NAME: DIST}``: each bare member ``NAME`` becomes ``DIST:NAME``.

    The pin is folded into the names, so the run records (and a bench keys) the strategy it means.

    Raises:
        ConfigError: ``plugins`` is not ``{prefer: {strategy name: distribution}}``.
    """
    if plugins is None:
        return
    if not isinstance(plugins, dict) or set(plugins) - {"prefer"}:
        raise ConfigError(f"plugins: expected {{prefer: {{STRATEGY: DISTRIBUTION}}}}, got {plugins!r}")
    prefer = plugins.get("prefer") or {}
    if not isinstance(prefer, dict) or not all(isinstance(k, str) and isinstance(v, str) and v and ":" not in k
                                               for k, v in prefer.items()):
        raise ConfigError(f"plugins.prefer: expected {{STRATEGY: DISTRIBUTION}}, e.g. {{kd: kdzoo-logit}}, "
                          f"got {prefer!r}")
    members = data.get("strategy", [{"name": StrategySpec.name}])
    data["strategy"] = [dict(m, name=f"{prefer[m['name']]}:{m['name']}") if m.get("name") in prefer else m
                        for m in members]


# Defaults per dataset, under whatever a config sets. diabetes: 442 tabular samples, ~3 steps an epoch;
# the global defaults (LeNet-5, which takes images; 10 epochs = 30 steps) predict the training mean (test MSE
# ~5,300). An MLP for 150 epochs (~450 steps; its teacher the same) reaches ~3,400, below scikit-learn's
# LinearRegression (3,467).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "diabetes": {"student": {"name": "mlp"}, "train": {"epochs": 150}, "teacher_train": {"epochs": 150}},
}


def _with_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every key of ``defaults`` it does not set (nested sections merged key by key)."""
    out = dict(data)
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _with_defaults(out[key], value)
        elif key not in out:
            out[key] = value
    return out


def make_config(data: dict | None = None, overrides: list[str] = ()) -> RunConfig:
    """Build a validated :class:`RunConfig` from plain data plus dotted overrides (over the dataset's
    :data:`DATASET_DEFAULTS`, over the dataclass defaults)."""
    data = dict(data or {})
    for item in overrides:
        set_dotted(data, item)
    if "strategy" in data:
        data["strategy"] = parse_strategy(data["strategy"])
    if "plugins" in data:
        pin_strategies(data, data.pop("plugins"))
    for key in ("student", "teacher"):
        if isinstance(data.get(key), str):
            data[key] = {"name": data[key]}
    if isinstance(data.get("data"), str):
        data["data"] = {"name": data["data"]}
    name = data.get("data", {}).get("name") if isinstance(data.get("data"), dict) else None
    if isinstance(name, str) and name.partition(":")[0] in DATASET_DEFAULTS:
        defaults = DATASET_DEFAULTS[name.partition(":")[0]]
        if isinstance(data.get("train"), dict) and data["train"].get("steps") is not None:
            defaults = {k: v for k, v in defaults.items() if k != "train"}  # a step budget replaces the epochs
        if isinstance(data.get("student"), dict) and data["student"].get("checkpoint"):
            defaults = {k: v for k, v in defaults.items() if k != "student"}  # the weights file names the model
        if data.get("teacher") is None:
            defaults = {k: v for k, v in defaults.items() if k != "teacher_train"}
        data = _with_defaults(data, defaults)
    config = build(RunConfig, data)
    validate(config)
    return config


def _check_fields(obj: Any, path: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{path}{f.name}.")
        else:
            check_value(value, f.metadata.get("bounds"), f"{path}{f.name}")


def validate(config: RunConfig) -> RunConfig:
    """Static checks of a whole config, before anything is loaded: every number finite and in
    range, and the rules that tie fields together. Checks that need the data (labels per class
    against class sizes) run right after loading, before any teacher or run directory.

    Raises:
        ConfigError: one line naming the key, the bad value and what is valid.
    """
    _check_fields(config, "")
    for spec in config.strategy:
        for key, value in (spec.params or {}).items():
            check_value(value, None, f"strategy.{spec.name}.{key}")
    if not config.strategy:
        raise ConfigError("strategy: at least one strategy is needed, e.g. 'ce' or 'kd'")
    d, t = config.data, config.train
    if d.val_fraction + d.test_fraction >= 1:
        raise ConfigError(f"data.val_fraction + data.test_fraction must be < 1 (something must be left to train on), "
                          f"got {d.val_fraction} + {d.test_fraction}")
    if len(d.crop_scale) != 2 or d.crop_scale[0] > d.crop_scale[1]:
        raise ConfigError(f"data.crop_scale must be [min, max] with min <= max, got {d.crop_scale}")
    if d.image_size is not None and len(d.image_size) not in (1, 2):
        raise ConfigError(f"data.image_size must be [H, W] or [S], got {d.image_size}")
    if not t.seeds:
        raise ConfigError("train.seeds is empty; give at least one seed, e.g. --seeds 0 or --seeds 0,1,2")
    repeated = sorted({s for s in t.seeds if t.seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"train.seeds repeats {', '.join(map(str, repeated))} (got {t.seeds}); each seed is one run, "
                          "give distinct seeds")
    if t.steps is None and t.epochs is None:
        raise ConfigError("set train.steps or train.epochs (a positive budget)")
    if config.teacher_train.finetune and (config.teacher is None or not config.teacher.checkpoint):
        raise ConfigError("teacher_train.finetune fine-tunes teacher.checkpoint, but the teacher has no checkpoint; "
                          "set teacher.checkpoint (or --teacher FILE), or drop teacher_train.finetune")
    if config.teacher_train.finetune and config.teacher_train.random_init:
        raise ConfigError("teacher_train.finetune and teacher_train.random_init exclude each other "
                          "(fine-tune a checkpoint, or keep a random teacher); drop one")
    for name in (config.name,) if config.name is not None else ():
        check_run_name(name)
    return config


def check_run_name(name: str) -> str:
    """A run name is one folder name inside ``--out``, never a path that could leave it."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"--name {name!r} must be a plain folder name (no '/', not '.' or '..'); "
                          "use --out to choose the parent folder")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(f"--name {name!r} holds a control character (a newline or tab?); use a plain folder name")
    if len(name.encode("utf-8", "surrogateescape")) > RUN_NAME_MAX:
        raise ConfigError(f"--name is {len(name.encode('utf-8', 'surrogateescape'))} bytes long; a run name may have "
                          f"at most {RUN_NAME_MAX} (got {name[:40]!r}...)")
    return name


def canonical(value: Any) -> Any:
    """``value`` with numbers normalised, for hashing: ``15`` and ``15.0`` are one key."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def data_options(config: RunConfig) -> dict[str, Any]:
    """Options for kdzoo's file datasets: downloads only when asked; an image folder's view size."""
    return {"download": config.data.download, "image_size": config.data.image_size or config.student.input_size}
