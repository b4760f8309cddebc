"""Weight files from anywhere: checked and read by kdzoo as data, then fitted to a model.

Formats are recognised by content, not by suffix:

* a kdzoo export: ``.safetensors`` with kdzoo metadata in its header (or a ``.json`` beside it);
* a plain state dict: safetensors, or ``torch.save`` of a dict of tensors (``.pt``/``.pth``/``.bin``);
* a timm ``train.py`` checkpoint (``state_dict``, ``state_dict_ema``, ``args`` holding an
  ``argparse.Namespace``, ``epoch``, ``arch``, ``optimizer``, ...): the EMA weights when present, as
  timm's own loader does, unless ``use_ema`` is off;
* any of these with DDP ``module.`` (or ``torch.compile`` ``_orig_mod.``) prefixes, which are stripped;
* a timm / Hugging Face folder: ``config.json`` with ``model.safetensors`` or ``pytorch_model.bin``.

Torch files are read with ``torch.load(weights_only=True)``; the only class allowed beyond tensors and
plain data is ``argparse.Namespace`` (what timm's ``train.py`` stores), so nothing in a file ever runs.
Every problem is one :class:`~kdzoo.contract.errors.ConfigError` line naming the path, found before timm or
training sees the file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..atomic import atomic_path
from ..config import ModelConfig, RunConfig
from ..contract.errors import ConfigError
from ..contract.strategy import Strategy

META_KEY = "kdzoo"
ACCEPTED = ("a kdzoo export, a state dict (.safetensors/.pt/.pth/.bin), a timm train.py checkpoint, "
            "or a folder with config.json and model.safetensors or pytorch_model.bin")
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
ALLOWED_GLOBALS = [argparse.Namespace]  # timm train.py stores its command line as a Namespace
PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers
_MAX_SAFETENSORS_HEADER = 100_000_000


@dataclass
class Weights:
    """Tensors read from a weights file, with what the file says about the model.

    Attributes:
        path: the path as given (a file or a folder).
        file: the file the tensors came from.
        state: the state dict, wrapper prefixes stripped.
        meta: kdzoo metadata of an export, else ``None``.
        config: a folder's ``config.json``, else ``None``.
        args: a timm ``train.py`` checkpoint's arguments as a dict, else ``None``.
        kind: what was read, for messages (``"timm train.py checkpoint (EMA weights)"``).
    """

    path: Path
    file: Path
    state: dict[str, Tensor]
    meta: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    args: dict[str, Any] | None = None
    kind: str = "state dict"


# -- checking -----------------------------------------------------------------------------------------
def locate(path: str | Path, role: str = "weights file") -> tuple[Path, str]:
    """Check a weights path and find the file holding its tensors.

    Args:
        path: a weights file or a timm/HF folder.
        role: how messages name it, e.g. ``"student checkpoint"``.

    Returns:
        ``(file, format)`` with format ``safetensors``, ``torch`` (zip) or ``torch-legacy``.

    Raises:
        ConfigError: the path does not exist, is unreadable, empty or of no accepted format.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{role} {str(path)!r} does not exist")
    file = path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{role} {str(path)!r} is a directory without config.json (accepted: {ACCEPTED})")
        found = [path / name for name in FOLDER_WEIGHTS if (path / name).is_file()]
        if not found:
            raise ConfigError(f"{role} {str(path)!r} has config.json but neither {' nor '.join(FOLDER_WEIGHTS)}")
        file = found[0]
    try:
        with open(file, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise ConfigError(f"{role} {str(file)!r} cannot be read ({exc.strerror or exc})") from None
    size = file.stat().st_size
    if size == 0:
        raise ConfigError(f"{role} {str(file)!r} is empty")
    fmt = _sniff(head)
    if fmt is None:
        raise ConfigError(f"{role} {str(file)!r} cannot be read as a checkpoint (not a recognised weights format; "
                          f"accepted: {ACCEPTED})")
    problem = _truncation(file, fmt, size)
    if problem:
        raise _corrupt(role, file, problem)
    return file, fmt


_DIGESTS: dict[tuple[str, float, int], str] = {}  # (file, mtime, size) -> sha256: each file hashed once


def file_digest(path: str | Path, role: str = "teacher checkpoint") -> str:
    """SHA-256 of the file holding a checkpoint's tensors (a folder's weights file): the same weights
    have the same digest wherever they lie."""
    file, _ = locate(path, role)
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime, stat.st_size)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "torch"  # torch.save's zip container
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "torch-legacy"  # a pickle stream: torch.save(_use_new_zipfile_serialization=False)
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= _MAX_SAFETENSORS_HEADER:
        return "safetensors"  # 8-byte little-endian header length, then the JSON header
    return None


def _truncation(file: Path, fmt: str, size: int) -> str | None:
    """Cheap structural checks that catch a cut-off file without reading its tensors."""
    if fmt == "torch":
        import zipfile

        return None if zipfile.is_zipfile(file) else "no zip directory at the end of the file"
    if fmt != "safetensors":
        return None
    with open(file, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if 8 + n > size:
            return f"header of {n} bytes in a file of {size}"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "the header is not JSON"
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)]
    if 8 + n + max(ends, default=0) != size:
        return f"tensors need {8 + n + max(ends, default=0)} bytes, the file has {size}"
    return None


def _corrupt(role: str, file: Path, why: str) -> ConfigError:
    why = " ".join(str(why).split()).split(". ")[0][:160]  # the first sentence: torch appends advice
    return ConfigError(f"{role} {str(file)!r} cannot be read as a checkpoint (truncated or corrupt: {why}); "
                       f"accepted: {ACCEPTED}")


# -- reading ------------------------------------------------------------------------------------------
def read_weights(path: str | Path, *, use_ema: bool = True, role: str = "weights file") -> Weights:
    """Read a weights file or folder of any accepted format as data.

    Args:
        path: the file or folder.
        use_ema: prefer ``state_dict_ema`` (or ``model_ema``) of a timm ``train.py`` checkpoint.
        role: how messages name the path.
    """
    path = Path(path)
    file, fmt = locate(path, role)
    weights = Weights(path=path, file=file, state={})
    if path.is_dir():
        weights.config = _read_config(path, role)
        weights.kind = "timm/HF folder"
    if fmt == "safetensors":
        weights.state, weights.meta = _read_safetensors(file, role)
        weights.meta = weights.meta or _side_meta(file)
        if weights.meta and not weights.config:
            weights.kind = "kdzoo export"
    else:
        obj = _torch_load(file, role)
        weights.state = _pick_state(obj, use_ema, weights, role)
    weights.state = strip_prefixes(weights.state)
    return weights


def _read_config(folder: Path, role: str) -> dict[str, Any]:
    file = folder / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{role} {str(file)!r} is not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{role} {str(file)!r} is not a JSON object")
    return config


def read_kdzoo_meta(path: str | Path, role: str = "model file") -> dict[str, Any] | None:
    """The kdzoo metadata of an export (header only, tensors are not read), or ``None``."""
    file, fmt = locate(path, role)
    if fmt != "safetensors":
        return _side_meta(file)
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise _corrupt(role, file, exc) from None
    return json.loads(raw) if raw else _side_meta(file)


def _side_meta(file: Path) -> dict[str, Any] | None:
    side = file.with_suffix(".json")
    if file.suffix == ".safetensors" and side.is_file():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return meta if isinstance(meta, dict) and "name" in meta and "input_shape" in meta else None
    return None


def _read_safetensors(file: Path, role: str) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # SafetensorError for torn headers or data past the end of the file
        raise _corrupt(role, file, exc) from None
    return state, (json.loads(raw) if raw else None)


def _torch_load(file: Path, role: str) -> Any:
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    try:
        if safe_globals is not None:
            with safe_globals(ALLOWED_GLOBALS):
                return torch.load(str(file), map_location="cpu", weights_only=True)
        torch.serialization.add_safe_globals(ALLOWED_GLOBALS)  # torch < 2.5 has no context manager
        return torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found and "weights only" in str(exc).lower():
            raise ConfigError(f"{role} {str(file)!r} holds {found.group(1)!r}, which kdzoo does not unpickle (read "
                              f"with weights_only=True; allowed: tensors, plain data, argparse.Namespace)") from None
        raise _corrupt(role, file, exc) from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
        raise _corrupt(role, file, exc) from None


def _pick_state(obj: Any, use_ema: bool, weights: Weights, role: str) -> dict[str, Tensor]:
    """The model's tensors in a loaded object: a state dict, or the right entry of a training checkpoint."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{role} {str(weights.file)!r} holds a {type(obj).__name__}, not a state dict "
                          f"(accepted: {ACCEPTED})")
    keys = (["state_dict_ema", "model_ema"] if use_ema else []) + ["state_dict", "model"]
    for key in keys:
        if isinstance(obj.get(key), dict) and obj[key]:
            if "args" in obj or "epoch" in obj or "optimizer" in obj:
                ema = key in ("state_dict_ema", "model_ema")
                weights.kind = f"timm train.py checkpoint ({'EMA' if ema else 'non-EMA'} weights)"
                args = obj.get("args")
                weights.args = dict(vars(args)) if isinstance(args, argparse.Namespace) else (
                    dict(args) if isinstance(args, dict) else {})
                if obj.get("arch") and isinstance(obj["arch"], str):
                    weights.args.setdefault("model", obj["arch"])
            else:
                weights.kind = f"checkpoint entry {key!r}"
            obj = obj[key]
            break
    else:
        if not use_ema and isinstance(obj.get("state_dict_ema"), dict):
            raise ConfigError(f"{role} {str(weights.file)!r} has only EMA weights (state_dict_ema); set use_ema: true")
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state or not all(isinstance(k, str) for k in state):
        raise ConfigError(f"{role} {str(weights.file)!r} holds no tensors by name (top-level keys "
                          f"{sorted(map(str, obj))[:6]}; accepted: {ACCEPTED})")
    return state


def strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Remove wrapper prefixes (``module.``, ``_orig_mod.``) shared by every key."""
    changed = True
    while changed and state:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


# -- what a file says about its model -------------------------------------------------------------------
def model_name(weights: Weights) -> str | None:
    """The architecture a file names: kdzoo metadata, ``config.json`` or timm ``train.py`` arguments."""
    if weights.meta and weights.meta.get("name"):
        return str(weights.meta["name"])
    if weights.config and isinstance(weights.config.get("architecture"), str):
        return weights.config["architecture"]
    if weights.args and isinstance(weights.args.get("model"), str):
        return weights.args["model"]
    return None


def model_name_from_file(path: str | Path, role: str) -> str:
    """The model name a weights file carries, for ``--teacher FILE``; one line if it has none."""
    file, fmt = locate(path, role)
    if Path(path).is_dir() or fmt == "safetensors":  # the name is in a header or config.json: skip the tensors
        meta = read_kdzoo_meta(path, role)
        config = _read_config(Path(path), role) if Path(path).is_dir() else None
        name = model_name(Weights(Path(path), file, {}, meta=meta, config=config))
    else:
        name = model_name(read_weights(path, role=role))
    if not name:
        raise ConfigError(f"{role} {str(path)!r} carries no model name; pass -c with its name and checkpoint")
    return name


def with_file_defaults(cfg: ModelConfig, weights: Weights) -> ModelConfig:
    """``cfg`` completed by what the file says about the same architecture (settings in ``cfg`` win).

    A kdzoo export gives kwargs, input size and normalisation; a timm/HF folder its ``model_args`` and
    ``pretrained_cfg`` (input size, mean, std); a timm ``train.py`` checkpoint its ``in_chans``,
    ``input_size``/``img_size``, ``mean`` and ``std`` where they were set.
    """
    if model_name(weights) != cfg.name:
        return cfg
    kwargs: dict[str, Any] = {}
    size = mean = std = None
    if weights.meta:
        kwargs = dict(weights.meta.get("kwargs") or {})
        shape = weights.meta.get("input_shape") or []
        size = shape[1:] if len(shape) == 3 else None
        mean, std = weights.meta.get("mean"), weights.meta.get("std")
    elif weights.config:
        kwargs = {k: v for k, v in (weights.config.get("model_args") or {}).items() if k != "num_classes"}
        pcfg = weights.config.get("pretrained_cfg") or {}
        if pcfg.get("input_size"):
            size = list(pcfg["input_size"])[1:]
            kwargs.setdefault("in_chans", int(pcfg["input_size"][0]))
        mean, std = pcfg.get("mean"), pcfg.get("std")
    elif weights.args:
        a = weights.args
        if a.get("in_chans"):
            kwargs["in_chans"] = int(a["in_chans"])
        if a.get("input_size"):
            size = list(a["input_size"])[1:]
            kwargs.setdefault("in_chans", int(a["input_size"][0]))
        elif a.get("img_size"):
            size = [int(a["img_size"])] * 2
        mean, std = a.get("mean"), a.get("std")
    return replace(cfg, kwargs=cfg.kwargs or kwargs, input_size=cfg.input_size or size,
                   mean=cfg.mean or (list(mean) if mean else None), std=cfg.std or (list(std) if std else None))


# -- fitting ------------------------------------------------------------------------------------------
def check_fit(net: nn.Module, state: dict[str, Tensor], path: str | Path, what: str) -> None:
    """Raise one line naming the keys and shapes of ``state`` that do not fit ``net``.

    Args:
        what: the model as messages name it, e.g. ``"student 'test_resnet'"``.
    """
    own = net.state_dict()
    cast = [f"{k} is {str(v.dtype).removeprefix('torch.')}" for k, v in state.items()
            if k in own and own[k].is_floating_point() and not v.is_floating_point()]
    if cast:  # an integer or complex tensor would be cast into the model silently
        more = f" and {len(cast) - 3} more" if len(cast) > 3 else ""
        raise ConfigError(f"weights {str(path)!r} do not fit {what}: {', '.join(cast[:3])}{more} where the model holds "
                          "floating-point numbers; a weights file holds float tensors (quantised or damaged file?)")
    shapes = [f"{k} {tuple(v.shape)} in file vs {tuple(own[k].shape)} in model"
              for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    extra = [k for k in state if k not in own]
    if not (shapes or missing or extra):
        return
    parts = []
    for label, items in (("shape mismatch", shapes), ("missing from file", missing), ("not in model", extra)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            parts.append(f"{label}: {', '.join(items[:3])}{more}")
    raise ConfigError(f"weights {str(path)!r} do not fit {what} ({'; '.join(parts)}); "
                      f"wrong architecture, kwargs (e.g. in_chans) or class count?")


def classifier_prefix(net: nn.Module) -> str | None:
    """The state-dict prefix of ``net``'s classifier (``get_classifier()``), e.g. ``"fc."`` or ``"head.fc."``."""
    head = net.get_classifier() if hasattr(net, "get_classifier") else None
    if not isinstance(head, nn.Module):
        return None
    return next((f"{name}." for name, module in net.named_modules() if module is head and name), None)


def load_into(net: nn.Module, weights: Weights, what: str, *, new_head: bool = False) -> list[str]:
    """Copy ``weights`` into ``net`` after :func:`check_fit`; every tensor of the model is set.

    Args:
        new_head: a classifier in the file whose shapes do not fit ``net``'s (another class count) is
            left out, and ``net`` keeps its freshly initialised one; everything else must fit.

    Returns:
        The state-dict keys left at their fresh initialisation (the classifier's, with ``new_head``).
    """
    state, fresh = weights.state, []
    prefix, own = classifier_prefix(net), net.state_dict()
    head_keys = [k for k in own if prefix and k.startswith(prefix)]
    head_misfits = any(k not in state or state[k].shape != own[k].shape for k in head_keys)
    if new_head and head_misfits:
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        state.update({k: own[k] for k in head_keys})
        fresh = head_keys
    try:
        check_fit(net, state, weights.path, what)
    except ConfigError as exc:
        body_fits = all(k.startswith(prefix) or (k in state and state[k].shape == v.shape)
                        for k, v in own.items() if not k.endswith("num_batches_tracked")) if prefix else False
        if new_head or not head_misfits or not body_fits:
            raise
        raise ConfigError(f"{str(exc).rstrip('?')}? Only the classifier ({prefix.rstrip('.')}) differs: for a "
                          f"backbone pretrained with another number of classes set new_head: true") from None
    net.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent (check_fit allows it)
    return fresh


# -- a run's files, checked before anything is trained or written ---------------------------------------
def check_weight_files(config: RunConfig, members: Any) -> None:
    """Static checks of a run's weight files: each exists and is of an accepted format.

    A student checkpoint and a strategy that sets the student's starting weights (``init_student``,
    e.g. ``weight-selection``) exclude each other: both decide the same weights, and silently
    dropping either would hide a mistake. ``members``: the run's resolved stack (each with its ``cls``,
    :class:`kdzoo.zoo.stack.Member`).
    """
    for role, cfg in (("teacher checkpoint", config.teacher), ("student checkpoint", config.student)):
        if cfg is not None and cfg.checkpoint:
            locate(cfg.checkpoint, role)
    if config.student.checkpoint:
        for cls in (m.cls for m in members):
            if cls.init_student is not Strategy.init_student:
                raise ConfigError(f"student.checkpoint and strategy {cls.name!r} both set the student's starting "
                                  f"weights; drop one (the checkpoint, or {cls.name!r} from the stack)")


# -- export for timm users ----------------------------------------------------------------------------
def save_timm_folder(model: Any, folder: str | Path, weights_file: str | Path) -> None:
    """Write ``folder/config.json`` + ``folder/model.safetensors`` for ``timm.create_model("local-dir:...")``.

    ``config.json`` holds the architecture, ``model_args`` (kwargs and ``in_chans``), ``num_classes``,
    label names and a ``pretrained_cfg`` with the input size and the exact normalisation kdzoo applies,
    so timm's data config reproduces kdzoo's preprocessing. The weights are ``weights_file`` (a kdzoo
    export of the same model), hard-linked where the file system allows, else copied.
    """
    import shutil

    import timm

    meta = model.meta
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    default = timm.get_pretrained_cfg(meta["name"])
    default = default.to_dict() if default is not None else {}
    shape = list(meta["input_shape"])
    pretrained_cfg = {
        "input_size": shape, "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist(),
        "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center",  # kdzoo resizes whole images
        "num_classes": meta["num_classes"], "fixed_input_size": bool(default.get("fixed_input_size", False)),
        "first_conv": default.get("first_conv"), "classifier": default.get("classifier"),
    }
    config = {
        "architecture": meta["name"], "num_classes": meta["num_classes"],
        "num_features": int(getattr(model.net, "num_features", 0)),
        "model_args": dict(meta.get("kwargs") or {}, in_chans=shape[0]),
        "pretrained_cfg": {k: v for k, v in pretrained_cfg.items() if v is not None},
        "label_names": list(meta.get("classes") or []), META_KEY: meta,
    }
    target = folder / "model.safetensors"
    tmp = folder / f".model.safetensors.tmp{os.getpid()}"
    try:
        os.link(weights_file, tmp)
    except OSError:
        shutil.copyfile(weights_file, tmp)
    os.replace(tmp, target)
    with atomic_path(folder / "config.json") as tmp_json:
        tmp_json.write_text(json.dumps(config, indent=2, default=str))
