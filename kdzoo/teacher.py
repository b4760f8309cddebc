"""Teachers: loaded from a local file through timm's loading path, or trained once and cached.

A trained teacher is cached under ``$KDZOO_CACHE`` (default ``~/.cache/kdzoo``) by a hash of
everything that determines it: model and kwargs, dataset, split, training recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .config import ModelConfig, RunConfig, StrategySpec, TrainConfig, to_dict
from .data import DatasetBundle, Splits
from .errors import ConfigError
from .models import KDModel, create_model, load_model, read_meta, read_state, verify_loaded


def cache_root() -> Path:
    return Path(os.environ.get("KDZOO_CACHE") or Path.home() / ".cache" / "kdzoo")


def teacher_key(config: RunConfig) -> str:
    """Hash of everything that determines a trained teacher."""
    d = config.data
    spec = {
        "model": to_dict(config.teacher), "train": to_dict(config.teacher_train),
        "data": {"name": d.name, "split_seed": d.split_seed, "val_fraction": d.val_fraction,
                 "test_fraction": d.test_fraction, "batch_size": d.batch_size, "shift_pixels": d.shift_pixels},
        "format": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def teacher_config(config: RunConfig) -> RunConfig:
    """The run config that trains the teacher: ``ce`` on every train label, selected on validation."""
    tt = config.teacher_train
    data = type(config.data)(**{**to_dict(config.data), "labels_per_class": None, "augment": tt.augment})
    return RunConfig(student=config.teacher, teacher=None, strategy=[StrategySpec("ce")], data=data,
                     optim=tt.optim, train=TrainConfig(epochs=tt.epochs, seeds=[tt.seed]), runtime=config.runtime,
                     out=str(cache_root() / "teachers"), name=teacher_key(config))


def load_teacher_file(cfg: ModelConfig, bundle: DatasetBundle, zoo: Any, mean, std) -> KDModel:
    """A teacher from ``cfg.checkpoint``: an exported kdzoo model, or plain weights of ``cfg.name``."""
    path = Path(cfg.checkpoint)
    if not path.exists():
        raise ConfigError(f"teacher checkpoint {str(path)!r} does not exist")
    try:
        meta = read_meta(path)
    except ConfigError:
        meta = None
    if meta is not None:
        return load_model(path, zoo, meta)
    is_timm = zoo.model(cfg.name) is None
    model = create_model(cfg, num_classes=len(bundle.classes) if bundle.task == "classification" else bundle.y.shape[1],
                         data_shape=bundle.sample_shape, data_mean=mean, data_std=std, classes=bundle.classes,
                         task=bundle.task, zoo=zoo, pretrained_file=str(path) if is_timm else None)
    state = read_state(path)
    if not is_timm:
        model.net.load_state_dict(state, strict=True)
    verify_loaded(model.net, state, path)
    return model


def resolve_teacher(config: RunConfig, bundle: DatasetBundle, splits: Splits, zoo: Any, mean, std,
                    log=print) -> KDModel | None:
    """The run's teacher: from its checkpoint, from the cache, or trained now and cached."""
    if config.teacher is None:
        return None
    if config.teacher.checkpoint:
        return load_teacher_file(config.teacher, bundle, zoo, mean, std)
    tconf = teacher_config(config)
    path = Path(tconf.out) / tconf.name / "teacher.safetensors"
    if path.exists():
        model = load_model(path, zoo)
        log(f"teacher {config.teacher.name}: cached {path} (val acc {model.meta.get('val', {})})")
        return model
    from .data import make_splits
    from .engine import run_seed

    log(f"teacher {config.teacher.name}: training on the full train split (cache key {tconf.name}) ...")
    full = make_splits(bundle, tconf.data)  # every train label, same train/val/test partition
    result = run_seed(tconf, bundle, full, zoo, seed=tconf.train.seeds[0], run_dir=Path(tconf.out) / tconf.name,
                      teacher=None, resume=False, export_name="teacher.safetensors", log=log)
    return load_model(path, zoo) if result else None
