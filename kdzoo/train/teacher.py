"""Teachers: loaded from a local weights file (read by kdzoo.models.weights), or trained once and cached.

A trained teacher is cached under ``$KDZOO_CACHE`` (default ``~/.cache/kdzoo``) by a hash of
everything that determines it: model and kwargs, dataset, split, training recipe.

A teacher may be trained on another task than the student's (``teacher_data``: e.g. ``mnist5k``
for a student on ``mnist5k:mod3``); ``teacher_train.random_init`` gives the untrained control.
Strategies that need the teacher's label space are checked against it before any teacher is
trained, so a mismatch costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from ..config import ModelConfig, RunConfig, StrategySpec, TrainConfig, canonical, key_dict, to_dict
from ..data import DatasetBundle, Splits
from ..contract.errors import Interrupted
from ..integrity import DamagedFile, move_aside, verify_torch
from ..models.wrapper import KDModel, load_model
from ..paths import cache_root
from . import distributed
from .checkpoint import CHECKPOINT, PREVIOUS, resume_point, write_text
from ..zoo.stack import Member, check_label_space, cross_task_alternatives
from ..config import data_options
from ..data import channel_stats, load_dataset, make_splits, to_float
from ..models.weights import file_digest, read_kdzoo_meta
from ..models.wrapper import create_model, create_with_weights, save_model
from ..user import wrap_module
from .trainer import freeze

# (teacher config, its bundle, its full splits, zoo, run_dir=, resume=, log=) -> the run's result (falsy: not trained)
TrainTeacher = Callable[..., Any]


def teacher_key(config: RunConfig) -> str:
    """Hash of everything that determines a trained teacher."""
    d = config.data
    train = key_dict(config.teacher_train)
    if not train["random_init"]:
        del train["random_init"]  # trained teachers keep the cache keys they had before the switch existed
    model = key_dict(config.teacher)
    if model.get("use_ema", True):
        model.pop("use_ema", None)  # the default keeps the cache keys teachers had before the switch existed
    if config.teacher_train.finetune:  # the file's content, wherever it lies, decides the fine-tuned teacher

        model["checkpoint"] = file_digest(config.teacher.checkpoint)
    spec = {
        "model": model, "train": train,
        "data": {"name": teacher_data_name(config), "split_seed": d.split_seed, "val_fraction": d.val_fraction,
                 "test_fraction": d.test_fraction, "batch_size": d.batch_size, "shift_pixels": d.shift_pixels},
        "format": 2,  # 2: numbers canonical (15 == 15.0); format-1 teachers are trained once more
    }
    if config.teacher_train.augment == "timm":  # only then do timm's transform settings shape the teacher
        spec["data"].update(auto_augment=d.auto_augment, hflip=d.hflip, crop_scale=d.crop_scale)
    if config.teacher_train.augment == "shift-flip":  # only then does the flip probability shape the teacher
        spec["data"]["hflip"] = d.hflip
    if d.view_seed != 0:
        spec["data"]["view_seed"] = d.view_seed
    if d.image_size is not None:  # the view of an image folder (older keys stay as they were)
        spec["data"]["image_size"] = d.image_size
    return hashlib.sha256(json.dumps(canonical(spec), sort_keys=True).encode()).hexdigest()[:16]


def teacher_data_name(config: RunConfig) -> str:
    """The dataset spec the teacher is trained on: ``teacher_data``, else the student's ``data.name``."""
    return config.teacher_data or config.data.name


def teacher_config(config: RunConfig) -> RunConfig:
    """The run config that trains the teacher: ``ce`` on every train label, selected on validation."""
    tt = config.teacher_train
    data = type(config.data)(**{**to_dict(config.data), "name": teacher_data_name(config), "labels_per_class": None,
                                "augment": tt.augment, "mixup": 0.0, "cutmix": 0.0})  # the student's mixing is its own
    # a fine-tuned teacher starts from its checkpoint; a classifier that does not fit the task starts afresh
    model = replace(config.teacher, new_head=True) if tt.finetune else config.teacher
    return RunConfig(student=model, teacher=None, strategy=[StrategySpec("ce")], data=data,
                     optim=tt.optim, train=TrainConfig(epochs=tt.epochs, seeds=[tt.seed]),
                     runtime=replace(config.runtime, loggers=[]),  # trackers follow the distillation, not the cached teacher
                     out=str(cache_root() / "teachers"), name=teacher_key(config))


def load_teacher_file(cfg: ModelConfig, bundle: DatasetBundle, zoo: Any, mean, std) -> KDModel:
    """A teacher from ``cfg.checkpoint``: an exported kdzoo model, or weights of ``cfg.name`` in any
    format :mod:`kdzoo.models.weights` accepts (checked and read by kdzoo, ``weights_only``)."""
    meta = read_kdzoo_meta(cfg.checkpoint, role="teacher checkpoint")
    if meta is not None:  # an export knows its own architecture, kwargs and normalisation
        return load_model(cfg.checkpoint, zoo, meta)
    num_out = len(bundle.classes) if bundle.task == "classification" else bundle.y.shape[1]
    return create_with_weights(cfg, role="teacher checkpoint", num_classes=num_out, data_shape=bundle.sample_shape,
                               data_mean=mean, data_std=std, classes=bundle.classes, task=bundle.task, zoo=zoo)


def resolve_teacher(config: RunConfig, bundle: DatasetBundle, splits: Splits, zoo: Any, mean, std,
                    log=print, objects: Any = None, *, members: Sequence[Member],
                    train: TrainTeacher | None = None) -> KDModel | None:
    """The run's teacher: the caller's own module, from its checkpoint, from the cache, or trained now and cached.

    With ``teacher_data`` the teacher is built, trained and cached on that dataset; ``bundle`` and
    ``splits`` are the student's. Strategies that need the teacher's label space are checked
    against the teacher's classes before anything is trained.

    Teacher code only resolves, loads and freezes: a teacher missing from the cache is trained by
    ``train`` (the run driver's :func:`kdzoo.train.runs.train_teacher`), so this module never imports
    the run driver. ``members``: the run's resolved stack (the label-space check reads it).
    """
    if config.teacher is None:
        return None
    if objects is not None and objects.teacher is not None:  # used as given: wrapped and frozen, never trained

        t = config.teacher
        model = wrap_module(objects.teacher, to_float(bundle.x[[0]]), name=t.name, classes=bundle.classes,
                            task=bundle.task, input_size=t.input_size, mean=t.mean, std=t.std, **t.kwargs)
        return freeze(model)
    t_bundle = bundle
    if config.teacher_data and config.teacher_data != config.data.name:
        t_bundle = load_dataset(config.teacher_data, config.data.root, zoo, **data_options(config))
        mean, std = channel_stats(t_bundle, make_splits(t_bundle, replace(config.data, labels_per_class=None)).train)
    if config.teacher.checkpoint and not config.teacher_train.finetune:
        model = load_teacher_file(config.teacher, t_bundle, zoo, mean, std)
        check_teacher_label_space(config, model.meta.get("classes", []), bundle, zoo, members)
        return model
    check_teacher_label_space(config, t_bundle.classes, bundle, zoo, members)
    tconf = teacher_config(config)
    path = Path(tconf.out) / tconf.name / "teacher.safetensors"
    with teacher_lock(Path(tconf.out), tconf.name, log):
        model = _cached(path, zoo, config.teacher.name, log)
        if model is not None:
            return model
        if config.teacher_train.random_init:
            return _random_teacher(config, t_bundle, tconf, path, zoo, log)

        if train is None:
            raise RuntimeError("resolve_teacher: a teacher must be trained but no train function was given")
        run_dir = Path(tconf.out) / tconf.name
        _set_aside_damaged_checkpoints(run_dir, config.teacher.name, log)
        resuming = resume_point(run_dir) is not None
        start = f" from {config.teacher.checkpoint}" if config.teacher_train.finetune else ""
        log(f"teacher {config.teacher.name}: {'continuing' if resuming else 'training'}{start} on the full train split "
            f"of {tconf.data.name} (cache key {tconf.name}) ...")
        full = make_splits(t_bundle, tconf.data)  # every train label, same train/val/test partition
        try:
            result = train(tconf, t_bundle, full, zoo, run_dir=run_dir, resume=resuming, log=log)
        except Interrupted as exc:
            exc.hint = "the teacher's training continues from it when you run the same command again"
            raise
        if result and distributed.current().is_main:
            write_card(config, tconf, run_dir)
        return load_model(path, zoo) if result else None


def _cached(path: Path, zoo: Any, name: str, log) -> KDModel | None:
    """The cached teacher at ``path``, or ``None`` when there is none; a damaged one is moved aside
    (and so trained again from its run folder) with one line saying so."""
    if not path.exists():
        return None
    try:
        model = load_model(path, zoo)
    except DamagedFile as exc:
        if distributed.current().is_main:
            aside = move_aside(path)
            log(f"teacher {name}: the cached teacher is damaged ({_why(exc)}); moved aside to {aside.name}, "
                "building it again")
        distributed.barrier()
        return None
    log(f"teacher {name}: cached {path}{_score(model.meta.get('val'), 'val')}")
    return model


def _set_aside_damaged_checkpoints(run_dir: Path, name: str, log) -> None:
    """A cached teacher's training checkpoints are a cache too: a damaged one is moved aside, never loaded."""
    if not distributed.current().is_main:
        return
    for file in (run_dir / CHECKPOINT, run_dir / PREVIOUS):
        if file.is_file():
            try:
                verify_torch(file, "teacher checkpoint")
            except DamagedFile as exc:
                aside = move_aside(file)
                log(f"teacher {name}: {file.name} is damaged ({_why(exc)}); moved aside to {aside.name}")


def _why(exc: DamagedFile) -> str:
    return str(exc).rpartition("(")[2].rstrip(")") or "damaged"


def _score(metrics: Any, split: str) -> str:
    """``", val acc 98.40"`` from a metrics dict (the primary metric: accuracy, else the first); ``""`` when none."""
    if not isinstance(metrics, dict) or not metrics:
        return ""
    name = "acc" if "acc" in metrics else "mse" if "mse" in metrics else next(iter(metrics))
    return f", {split} {name} {float(metrics[name]):.2f}"


# A teacher that closes less than this share of the gap between chance and 100% accuracy teaches noise
WEAK_TEACHER_SHARE = 0.1


def chance_accuracy(y: Any, indices: Any) -> float:
    """Accuracy (%) of always predicting the most frequent class of ``y[indices]``."""
    import torch

    labels = torch.as_tensor(y)[torch.as_tensor(indices)].long()
    return 100.0 * float(torch.bincount(labels).max()) / max(len(labels), 1)


def near_chance_note(name: str, teacher_acc: float, chance: float) -> str | None:
    """A warning when a teacher's validation accuracy is barely above chance (``None`` otherwise)."""
    if teacher_acc >= chance + WEAK_TEACHER_SHARE * (100.0 - chance):
        return None
    return (f"warning: teacher {name} is barely better than chance (val acc {teacher_acc:.2f}, chance {chance:.2f}): "
            "distilling from it passes on noise; train it longer (teacher_train.epochs) or pick another teacher")


def below_ce_note(name: str, teacher_acc: float, student_ce_acc: float) -> str | None:
    """A warning when a teacher's validation accuracy is below a student's trained on labels alone (``ce``)."""
    if teacher_acc >= student_ce_acc:
        return None
    return (f"warning: teacher {name} (val acc {teacher_acc:.2f}) is worse than this student trained on the labels "
            f"alone (ce, val acc {student_ce_acc:.2f}): distilling from it can only pull the student down")


def teacher_card(config: RunConfig) -> Path | None:
    """The card of the config's trained, cached teacher (``None`` for a teacher file or one not trained here)."""
    if config.teacher is None or (config.teacher.checkpoint and not config.teacher_train.finetune):
        return None
    tconf = teacher_config(config)
    run_dir = Path(tconf.out) / tconf.name
    card = run_dir / "card.md"
    if not card.exists() and (run_dir / "summary.json").exists() and (run_dir / "teacher.safetensors").exists():
        write_card(config, tconf, run_dir)  # trained by an older kdzoo: the card is made from what it recorded
    return card if card.exists() else None


def write_card(config: RunConfig, tconf: RunConfig, run_dir: Path) -> Path:
    """``card.json`` and ``card.md`` beside a trained teacher's ``teacher.safetensors``: the recipe (model,
    data, training settings: what the cache key is made of), validation and test accuracy (the
    checkpoint chosen on validation, tested once), CPU and wall time, size and FLOPs."""
    summary = json.loads((run_dir / "summary.json").read_text())
    d = config.data
    recipe = {"teacher": to_dict(config.teacher), "teacher_train": to_dict(config.teacher_train),
              "data": {"name": teacher_data_name(config), "split_seed": d.split_seed, "val_fraction": d.val_fraction,
                       "test_fraction": d.test_fraction, "batch_size": d.batch_size, "shift_pixels": d.shift_pixels,
                       "hflip": d.hflip}}
    card = {"cache_key": tconf.name, "weights": "teacher.safetensors", "recipe": recipe,
            "selected_on": "validation", "best_step": summary.get("best_step"), "steps": summary.get("steps"),
            "val": summary.get("val_best"), "test": summary.get("test_best"),
            "cpu_seconds": summary.get("cpu_seconds"), "wall_seconds": summary.get("wall_seconds"),
            "params": summary.get("student_params"), "flops_per_sample": summary.get("student_flops")}
    write_text(run_dir / "card.json", json.dumps(card, indent=1, sort_keys=True) + "\n")

    def acc(part: str) -> str:
        return f"{card[part]['acc']:.2f}%" if card.get(part) and "acc" in card[part] else "n/a"

    lines = [f"# Teacher {config.teacher.name} ({tconf.name})", "",
             "- weights: `teacher.safetensors` (kdzoo export; `kdzoo eval` reads it)",
             f"- validation accuracy {acc('val')} (checkpoint of step {card['best_step']} of {card['steps']}, "
             f"chosen on validation); test accuracy {acc('test')}, measured once on that checkpoint",
             f"- {card['params']:,} parameters, {card['flops_per_sample'] / 1e6:.3g} MFLOP per sample"
             if card["params"] and card["flops_per_sample"] else "- size: n/a",
             f"- trained in {card['cpu_seconds'] / 60:.1f} CPU min ({card['wall_seconds'] / 60:.1f} min wall)"
             if card["cpu_seconds"] else "- time: n/a",
             "", "## Recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```", ""]
    write_text(run_dir / "card.md", "\n".join(lines))
    return run_dir / "card.md"


@contextlib.contextmanager
def teacher_lock(folder: Path, key: str, log=print) -> Iterator[None]:
    """Hold ``folder/key.lock`` while a teacher is looked up and, if missing, trained.

    Concurrent runs and bench workers that need the same teacher wait for the one training it,
    then load what it cached, instead of training it again into the same folder. Under torchrun
    rank 0 holds the lock for the whole job and the other ranks wait for it at a barrier, so two
    jobs never train one teacher (every rank of the job that holds it takes part in training).
    """
    dist = distributed.current()
    if dist.enabled and not dist.is_main:
        distributed.barrier()  # until rank 0 holds the lock
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{key}.lock", thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"teacher {key}: another process is training it; waiting ...")
        lock.acquire()
    try:
        distributed.barrier()  # under torchrun: the other ranks go on once rank 0 holds the lock
        yield
    finally:
        lock.release()


def _random_teacher(config: RunConfig, t_bundle: DatasetBundle, tconf: RunConfig, path: Path, zoo: Any, log) -> KDModel:
    """An untrained teacher (seeded by ``teacher_train.seed``), exported and cached like a trained one."""
    import torch

    mean, std = channel_stats(t_bundle, make_splits(t_bundle, tconf.data).train)
    num_out = len(t_bundle.classes) if t_bundle.task == "classification" else t_bundle.y.shape[1]
    torch.manual_seed(config.teacher_train.seed)
    model = create_model(config.teacher, num_classes=num_out, data_shape=t_bundle.sample_shape, data_mean=mean,
                         data_std=std, classes=t_bundle.classes, task=t_bundle.task, zoo=zoo)
    if distributed.current().is_main:
        save_model(model, path, {"random_init": True, "seed": config.teacher_train.seed})
    distributed.barrier()
    log(f"teacher {config.teacher.name}: random initialisation (seed {config.teacher_train.seed}, untrained), "
        f"cached {path}")
    return load_model(path, zoo)


def check_teacher_label_space(config: RunConfig, teacher_classes: list[str], bundle: DatasetBundle, zoo: Any,
                              members: Sequence[Member]) -> None:
    """Refuse, before any training, members that need the teacher's label space when it differs."""
    if bundle.task != "classification" or list(teacher_classes) == list(bundle.classes):
        return
    for m in members:
        if m.cls.label_space == "same" and m.cls.requires_teacher:
            check_label_space(m.name, teacher_classes, bundle.classes, bundle.task, cross_task_alternatives(zoo),
                              teacher_data=teacher_data_name(config), data=config.data.name)
