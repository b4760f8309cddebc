"""Teachers and students: timm models by name or registered models, behind one wrapper.

:class:`KDModel` owns the network plus what it needs from raw data: its input size (inputs are
resized per model, so teacher and student may differ), its channel count and its normalisation
(data arrive in [0, 1]; each model normalises with its own statistics, which converts between
different normalisations). Its metadata travels with exported weights.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..atomic import atomic_path
from ..config import ModelConfig, RunConfig
from ..contract.errors import ConfigError, MissingOutput, unknown
from ..contract.strategy import Outputs, Requirement
from ..integrity import safetensors_bytes, verify_safetensors
from .weights import load_into, model_name, read_kdzoo_meta, read_weights, save_timm_folder, with_file_defaults

META_KEY = "kdzoo"


class KDModel(nn.Module):
    """A network plus its input pipeline and metadata.

    Args:
        net: a timm model or a registered model following timm's feature API.
        meta: ``name``, ``kwargs``, ``source`` (``timm``/``kdzoo``), ``num_classes``,
            ``input_shape`` (``[C, H, W]`` or ``[D]``), ``mean``, ``std``, ``classes``, ``task``.
    """

    def __init__(self, net: nn.Module, meta: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.meta = meta
        shape = meta["input_shape"]
        self.is_image = len(shape) == 3
        mean = torch.tensor(meta.get("mean") or [0.0] * (shape[0] if self.is_image else 1))
        std = torch.tensor(meta.get("std") or [1.0] * (shape[0] if self.is_image else 1))
        view = (1, -1, 1, 1) if self.is_image else (1, -1)
        self.register_buffer("mean", mean.view(*view), persistent=False)
        self.register_buffer("std", std.view(*view), persistent=False)

    def preprocess(self, x: Tensor) -> Tensor:
        """Map a data-space batch to this model's input: size, channels, normalisation.

        Args:
            x: ``[B, C, H, W]`` images in [0, 1] or ``[B, D]`` vectors.
        """
        shape = self.meta["input_shape"]
        if self.is_image:
            if x.dim() != 4:
                raise ConfigError(f"model {self.meta['name']!r} takes images; the data gives {tuple(x.shape[1:])} vectors")
            c = shape[0]
            if x.shape[1] != c:
                x = x.mean(1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1) if x.shape[1] == 1 else x
            if tuple(x.shape[-2:]) != tuple(shape[1:]):
                x = F.interpolate(x, size=tuple(shape[1:]), mode="bilinear", align_corners=False)
        else:
            x = x.flatten(1)
            if x.shape[1] != shape[0]:
                raise ConfigError(f"model {self.meta['name']!r} takes {shape[0]} inputs; the data gives {x.shape[1]}")
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.preprocess(x))

    def outputs(self, x: Tensor, req: Requirement) -> Outputs:
        """Compute only what ``req`` asks for, in one forward pass."""
        x = self.preprocess(x)
        net = self.net
        if not (req.pooled or req.features):
            return Outputs(logits=net(x))
        features: dict[int, Tensor] = {}
        if req.features:
            final, inter = net.forward_intermediates(x, indices=list(req.features))
            features = dict(zip(req.features, inter))
        else:
            final = net.forward_features(x)
        pooled = net.forward_head(final, pre_logits=True)
        logits = net.get_classifier()(pooled) if req.logits else None
        return Outputs(logits=logits, pooled=pooled, features=features)

    # -- facts strategies use --------------------------------------------------------------------
    @property
    def num_features(self) -> int:
        """Width ``D`` of the pooled (pre-logit) output, measured by a dry forward of the model.

        timm's ``num_features`` is the width before the head; LCNet/MobileNetV3-style models add a
        pre-logits layer (``head_hidden_size``) that is wider, and projectors must match what
        ``outputs(..., pooled=True)`` really gives. 0 for a model without a pooled output.
        """
        if getattr(self, "_pooled_width", None) is None:
            self._pooled_width = self.dry_run()
        return self._pooled_width

    def dry_run(self) -> int:
        """Run one zero input through the model; returns the pooled width (0 if it has none).

        Raises:
            ConfigError: the model cannot run at its input size (e.g. too deep for 28x28), naming
                the model, the size and the fix.
        """
        shape = self.meta["input_shape"]
        param = next(self.parameters(), None)
        x = torch.zeros(1, *shape, device=param.device if param is not None else None)
        was_training = self.training
        self.eval()  # measuring must not move BN statistics
        try:
            with torch.no_grad():
                try:
                    pooled = self.outputs(x, Requirement(pooled=True)).pooled
                except (AttributeError, NotImplementedError, MissingOutput):  # no pooled output here
                    self.net(self.preprocess(x))
                    return 0
        except RuntimeError as exc:
            size = "x".join(str(v) for v in shape)
            raise ConfigError(f"model {self.meta['name']!r} cannot run on {size} inputs "
                              f"({' '.join(str(exc).split())}); give it a larger input: set its "
                              "input_size (e.g. --set student.input_size=[64,64]); the data is resized to it") from None
        finally:
            self.train(was_training)
        return int(pooled.flatten(1).shape[1])

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        info = getattr(self.net, "feature_info", [])
        return [dict(i) for i in (info.info if hasattr(info, "info") else info)]

    @property
    def has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.net.modules())


def _timm():
    import timm

    return timm


def create_model(cfg: ModelConfig, *, num_classes: int, data_shape: tuple[int, ...], data_mean: list[float] | None,
                 data_std: list[float] | None, classes: list[str], task: str, zoo: Any) -> KDModel:
    """Build a randomly initialised model for a dataset: a registered model by name, else a timm model.

    Weights from a file are loaded by :func:`create_with_weights` (kdzoo reads every
    file itself; timm never opens one).

    Args:
        cfg: the model's config (name, kwargs, input size, normalisation).
        num_classes: outputs of the head (targets for regression).
        data_shape: shape of one sample, ``(C, H, W)`` or ``(D,)``.
    """
    entry = zoo.model(cfg.name)
    is_image = len(data_shape) == 3
    kwargs = dict(cfg.kwargs)
    if entry is not None:
        input_shape = _input_shape(cfg, data_shape, kwargs)
        try:
            net = entry.obj(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model {cfg.name!r} with kwargs {kwargs}: {exc}") from None
        source = "kdzoo"
    else:
        timm = _timm()
        if not timm.is_model(cfg.name):
            raise unknown("model", cfg.name, list(zoo.collect().models) + ["<any timm model, e.g. test_resnet>"])
        if not is_image:
            raise ConfigError(f"model {cfg.name!r} is a timm image model; the data gives {data_shape[0]}-d vectors "
                              f"(use 'linear' or 'mlp')")
        input_shape = _input_shape(cfg, data_shape, kwargs, timm_cfg=timm.get_pretrained_cfg(cfg.name))
        create_kwargs = dict(kwargs, num_classes=num_classes, in_chans=input_shape[0])
        try:
            net = timm.create_model(cfg.name, **create_kwargs)
        except TypeError as exc:
            raise ConfigError(f"model {cfg.name!r}: bad kwargs {kwargs}: {exc}") from None
        source = "timm"
    mean = cfg.mean or (data_mean if is_image else None)
    std = cfg.std or (data_std if is_image else None)
    if is_image and mean and len(mean) != input_shape[0]:
        mean, std = [sum(mean) / len(mean)] * input_shape[0], [sum(std) / len(std)] * input_shape[0]
    meta = {
        "name": cfg.name, "kwargs": kwargs, "source": source, "num_classes": num_classes,
        "input_shape": list(input_shape), "mean": mean, "std": std, "classes": list(classes), "task": task,
    }
    model = KDModel(net, meta)
    model._pooled_width = model.dry_run()  # a model too deep for its input size fails here, before training
    return model


def _input_shape(cfg: ModelConfig, data_shape: tuple[int, ...], kwargs: dict, timm_cfg: Any = None) -> list[int]:
    if len(data_shape) == 1:
        return [int(data_shape[0])]
    c = int(kwargs.get("in_chans", data_shape[0]))
    if cfg.input_size:
        size = list(cfg.input_size)
    elif "img_size" in kwargs:
        s = kwargs["img_size"]
        size = [s, s] if isinstance(s, int) else list(s)
    elif timm_cfg is not None and getattr(timm_cfg, "fixed_input_size", False):
        size = list(timm_cfg.input_size[1:])
    else:
        size = list(data_shape[1:])
    if len(size) != 2:
        raise ConfigError(f"input_size for {cfg.name!r} must be [H, W], got {cfg.input_size!r}")
    return [c, int(size[0]), int(size[1])]


# -- export and reload ------------------------------------------------------------------------------
def save_model(model: KDModel, path: str | Path, extra_meta: dict[str, Any] | None = None) -> None:
    """Write ``model.net`` as safetensors with its metadata embedded and beside it (``.json``).

    For a timm architecture, also write the folder ``path`` without its suffix (``student/``) that
    ``timm.create_model("local-dir:FOLDER", pretrained=True)`` loads without kdzoo
    (:func:`kdzoo.models.weights.save_timm_folder`). Every file is written atomically (temporary file,
    then rename).
    """
    path = Path(path)
    meta = dict(model.meta, **(extra_meta or {}))
    state = {k: v.detach().contiguous().cpu() for k, v in model.net.state_dict().items()}
    with atomic_path(path) as tmp:  # the file carries its own SHA-256 (checked by load_model)
        tmp.write_bytes(safetensors_bytes(state, {META_KEY: json.dumps(meta)}))
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    if meta.get("source") == "timm":
        save_timm_folder(model, path.with_suffix(""), path)


def read_meta(path: str | Path) -> dict[str, Any]:
    """Metadata of an exported model (from the safetensors header, else the ``.json`` beside it).

    ``path`` may also be an export folder (``student/``); the file is checked first
    (:func:`kdzoo.models.weights.locate`).
    """
    meta = read_kdzoo_meta(path)
    if meta is None:
        raise ConfigError(f"{str(path)!r} carries no kdzoo metadata (name it in config with its model name instead)")
    return meta


def read_state(path: str | Path, use_ema: bool = True) -> dict[str, Tensor]:
    """Tensors of a weights file of any format :mod:`kdzoo.models.weights` accepts, read as data."""
    return read_weights(path, use_ema=use_ema).state


def load_model(path: str | Path, zoo: Any, meta: dict[str, Any] | None = None) -> KDModel:
    """Rebuild an exported model from its metadata and load its weights (every tensor must fit).

    Raises:
        DamagedFile: the file does not match the SHA-256 kdzoo wrote into it.
    """
    if Path(path).suffix == ".safetensors" and Path(path).is_file():
        verify_safetensors(path, "model file")
    meta = dict(meta or read_meta(path))
    shape = meta["input_shape"]
    cfg = ModelConfig(name=meta["name"], kwargs=meta.get("kwargs", {}),
                      input_size=shape[1:] if len(shape) == 3 else None, mean=meta.get("mean"), std=meta.get("std"))
    model = create_model(cfg, num_classes=meta["num_classes"], data_shape=tuple(shape), data_mean=meta.get("mean"),
                         data_std=meta.get("std"), classes=meta.get("classes", []), task=meta.get("task", "classification"),
                         zoo=zoo)
    load_into(model.net, read_weights(path, role="model file"), f"model {meta['name']!r} with kwargs {cfg.kwargs}")
    model.meta.update({k: v for k, v in meta.items() if k not in model.meta})  # e.g. val/test results
    return model


def verify_loaded(net: nn.Module, expected: dict[str, Tensor], path: str | Path) -> None:
    """Raise if any tensor of ``expected`` is missing from ``net`` or differs from it."""
    actual = net.state_dict()
    for key, value in expected.items():
        if key not in actual:
            raise ConfigError(f"{str(path)!r}: tensor {key!r} has no place in the model (wrong architecture or kwargs?)")
        if actual[key].shape != value.shape or not torch.equal(actual[key].cpu(), value.to(actual[key].dtype)):
            raise ConfigError(f"{str(path)!r}: tensor {key!r} was not loaded as saved (timm dropped or adapted it)")


# -- models with weights from a file (kdzoo.models.weights reads the files) -------------------------------
def create_with_weights(cfg: ModelConfig, *, role: str = "checkpoint", **create_kwargs: Any):
    """:func:`kdzoo.models.create_model`, then ``cfg.checkpoint`` loaded into it (if set).

    Args:
        cfg: the model's config; with a checkpoint, what the file says completes it
            (:func:`with_file_defaults`).
        role: how messages name the checkpoint, e.g. ``"student checkpoint"``.
        create_kwargs: everything else :func:`~kdzoo.models.create_model` takes.
    """
    if not cfg.checkpoint:
        return create_model(cfg, **create_kwargs)
    weights = read_weights(cfg.checkpoint, use_ema=cfg.use_ema, role=role)
    model = create_model(with_file_defaults(cfg, weights), **create_kwargs)
    named = model_name(weights)
    hint = f" (the file names {named!r})" if named and named != cfg.name else ""
    fresh = load_into(model.net, weights, f"{role.split()[0]} {cfg.name!r}{hint} with kwargs {model.meta['kwargs']}",
                      new_head=cfg.new_head)
    model.meta["weights_from"] = f"{cfg.checkpoint} ({weights.kind})" + (" without its classifier" if fresh else "")
    return model


def check_student_weights(config: RunConfig, bundle: Any, zoo: Any) -> None:
    """Read the student checkpoint (if any) and check it fits the student built for this data; the
    same for a teacher checkpoint to be fine-tuned on this data (``teacher_train.finetune``).

    Runs right after the data are loaded, before a teacher is trained or a run directory exists.
    """
    num_out = len(bundle.classes) if bundle.task == "classification" else bundle.y.shape[1]
    checks = [("student checkpoint", config.student)] if config.student.checkpoint else []
    if config.teacher_train.finetune and config.teacher is not None and config.teacher_data in (None, config.data.name):
        checks.append(("teacher checkpoint", replace(config.teacher, new_head=True)))
    for role, cfg in checks:
        with torch.random.fork_rng(devices=[]):  # building a throwaway model must not shift the run's random stream
            create_with_weights(cfg, role=role, num_classes=num_out, data_shape=bundle.sample_shape, data_mean=None,
                                data_std=None, classes=bundle.classes, task=bundle.task, zoo=zoo)
