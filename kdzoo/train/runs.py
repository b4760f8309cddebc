"""The run driver: ``distill`` reads top to bottom, from a config to a finished run directory.

It prepares the run once (:mod:`kdzoo.train.prepared`), opens its folder
(:mod:`kdzoo.train.run_dir`), resolves the teacher, trains every seed (:mod:`kdzoo.train.seed_run`) and
writes the run's summary. ``task_teacher`` and ``train_teacher`` give tools the same teacher outside
a run. Layout of a run directory::

    RUN/config.yaml          effective config: every setting, each strategy's full parameters (re-runnable)
    RUN/effective.yaml       values worked out at run time and the code that ran (information only)
    RUN/summary.json         per-seed results, mean ± std, provenance
    RUN/status.json          running, done, interrupted or failed
    RUN/seed-S/metrics.jsonl one JSON line per evaluation
    RUN/seed-S/checkpoint.pt student, strategy parts, optimiser, schedule, EMA, RNG (atomic, with its SHA-256;
                             the one before it kept as checkpoint.prev.pt)
    RUN/seed-S/student.safetensors (+ .json)  the exported student with its metadata
    RUN/seed-S/summary.json  this seed's result
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from . import distributed
from .checkpoint import write_text
from .effective import code_identity, effective_config
from .prepared import PreparedRun, check_run, prepare, prepared_run, student_stats, total_steps
from .run_dir import (RunResult, check_resume_objects, default_name, finished_result, is_run_folder,
                      read_run_config, read_seed_summary, run_directory)
from .seed_run import make_trainer, run_seed, setup_runtime, unused_gpu_note
from .teacher import below_ce_note, chance_accuracy, near_chance_note, resolve_teacher
from .trainer import freeze
from ..config import RunConfig, make_config, validate
from ..contract.errors import ConfigError
from ..data import DatasetBundle, Splits, channel_stats
from ..models.evaluate import evaluate, mean_std, primary_metric
from ..models.wrapper import KDModel
from ..paths import check_cache_root, check_out_dir, own_run
from ..progress import steps_progress
from ..user import from_python
from ..versions import dist_version, kdzoo_version
from ..zoo.plugins import load_zoo


def distill(config: RunConfig | dict | None = None, *, zoo: Any = None, resume: str | Path | None = None, log=print,
            teacher: Any = None, student: Any = None, train: Any = None, val: Any = None,
            test: Any = None) -> RunResult:
    """Run a distillation (every seed) and write its run directory.

    Everything that can be checked is checked before the run directory exists: the config
    statically (ranges, finite numbers, seeds), then the data (labels per class against class
    sizes). The directory is then created exclusively, so concurrent runs never share one; a run
    that fails a check later (e.g. a teacher's label space) removes it, and a run that fails
    during training is marked ``failed`` in ``status.json`` (never left looking resumable).

    Args:
        config: a :class:`RunConfig` or plain data for :func:`kdzoo.config.make_config`.
        zoo: loaded plugins (default: everything installed).
        resume: an existing run directory to continue (pass the same objects again).
        teacher: your own trained ``nn.Module`` (used as given: frozen, never trained); also
            accepted as ``config["teacher"]`` (a module, or ``{"object": module, ...ModelConfig}``).
        student: your own ``nn.Module`` to train (each seed trains a copy); also accepted in config.
        train: a torch ``Dataset`` of ``(input, class id)`` items (with ``classes`` or ``targets``),
            or your own ``DataLoader`` (resumed by step count only: not exact).
        val: a validation ``Dataset`` (default: a stratified share of ``train``, by its targets).
        test: a test ``Dataset`` (default: a stratified share of ``train``).

    Returns:
        The per-seed results, with mean ± std helpers.
    """
    config, objects = from_python(config, teacher=teacher, student=student, train=train, val=val, test=test)
    with contextlib.ExitStack() as owner:
        if resume is not None:
            if is_run_folder(resume) and int(os.environ.get("RANK", "0")) == 0:
                owner.enter_context(own_run(resume))  # before anything in it is read; held to the end
            config = read_run_config(resume)
            check_resume_objects(config, objects, resume)
            finished = finished_result(Path(resume), config)
            if finished is not None:
                log(f"run {resume} is finished (test {finished.metric} {finished.mean_std()[0]:.2f}); nothing to do")
                return finished
        elif not isinstance(config, RunConfig):
            config = make_config(config)
        else:
            validate(config)
        return _distill(config, objects, owner, zoo=zoo, resume=resume, log=log)


def _distill(config: RunConfig, objects: Any, owner: contextlib.ExitStack, *, zoo: Any, resume: str | Path | None,
             log) -> RunResult:
    """:func:`distill` once its config is read: ``owner`` holds the run folder's lock until the caller ends."""
    check_cache_root()  # a KDZOO_CACHE that is a file or cannot be created fails now, not after training
    check_out_dir(config.out)
    zoo = zoo or load_zoo()
    if distributed.current().rank or int(os.environ.get("RANK", "0")):
        log = _silent  # one voice under torchrun
    run = prepare(config, zoo, objects)  # the stack resolved, the data split, the budget: once for every seed
    device = setup_runtime(config)
    main = distributed.current().is_main
    note = unused_gpu_note(device)
    if note:
        log(note)
    record = effective_config(config, run.members) if resume is None and main else None
    with run_directory(config, owner, resume=resume, main=main, effective=record) as folder:
        teacher, teacher_info, near_chance = _teacher(run, device, log)
        if main and folder.created:  # a resume rewrites it when it ends (a refused resume leaves the run as it was)
            write_effective(folder.path, run, teacher)
        todo = []
        for seed in config.train.seeds:
            done = read_seed_summary(folder.path / f"seed-{seed}" / "summary.json") if resume is not None else None
            if done is not None:
                folder.seeds[seed] = done
            else:
                todo.append(seed)
        bar = _run_bar(run, todo, main)
        try:
            for seed in todo:
                folder.seeds[seed] = run_seed(run, seed, folder.path / f"seed-{seed}", teacher,
                                              resume=resume is not None, log=log, bar=bar)
        finally:
            if bar is not None:
                bar.close()
        metric, _ = primary_metric(run.task)
        result = RunResult(folder.path, config, folder.seeds, teacher_info, metric)
        m, s = result.mean_std()
        if main:
            write_effective(folder.path, run, teacher, folder.seeds)
        folder.summary = {"metric": metric, "test_best_mean": m, "test_best_std": s,
                          "seeds": {str(k): v for k, v in folder.seeds.items()}, "teacher": teacher_info,
                          "provenance": provenance(config)}  # written on leaving, with status done and the index entry
    seeds = folder.seeds
    spread = f"± {s:.2f} over seeds {config.train.seeds}" if len(seeds) > 1 else f"(1 seed: {config.train.seeds[0]})"
    if teacher_info and "val" in teacher_info and not near_chance and [x.name for x in config.strategy] == ["ce"]:
        note = below_ce_note(teacher.meta["name"], teacher_info["val"]["acc"],
                             mean_std([v["val_best"]["acc"] for v in seeds.values()])[0])
        if note:
            log(note)
    log(f"{'+'.join(x.name for x in config.strategy)}: test {metric} {m:.2f} {spread} -> {folder.path}")
    return result


def _teacher(run: PreparedRun, device: torch.device, log) -> tuple[KDModel | None, dict[str, Any] | None, str | None]:
    """The run's teacher on its device, what the summary records of it, and a near-chance note (or ``None``)."""
    config, bundle, splits = run.config, run.bundle, run.splits
    mean, std = channel_stats(bundle, splits.train)
    teacher = resolve_teacher(config, bundle, splits, run.zoo, mean, std, log=log, objects=run.objects,
                              members=run.members, train=train_teacher)
    if teacher is None:
        return None, None, None
    teacher = teacher.to(device)
    near_chance = None
    task = bundle.task
    if task == "classification" and teacher.meta.get("classes") == list(bundle.classes):
        info: dict[str, Any] = {"val": evaluate(teacher, bundle.x, bundle.y, splits.val, task,
                                                config.data.eval_batch_size)}
        metric, _ = primary_metric(task)
        log(f"teacher {teacher.meta['name']}: validation {metric} {info['val'][metric]:.2f}")
        near_chance = near_chance_note(teacher.meta["name"], info["val"][metric], chance_accuracy(bundle.y, splits.val))
        if near_chance:
            log(near_chance)
    else:
        info = {"note": "teacher label space differs from the data's; no accuracy"}
    info["meta"] = teacher.meta
    return teacher, info, near_chance


def train_teacher(tconf: RunConfig, bundle: DatasetBundle, splits: Splits, zoo: Any, *, run_dir: Path, resume: bool,
                  log=print) -> Any:
    """Train a teacher missing from the cache as a plain run of its own (``teacher.resolve_teacher`` calls it).

    In that run the teacher is the model being trained (``tconf.student``); errors about it are reworded to
    name the teacher and its config keys, which is what the user sets.
    """
    try:
        run = prepared_run(tconf, zoo, bundle, splits)  # a run of its own: its stack (ce) resolved once, here
        return run_seed(run, seed=tconf.train.seeds[0], run_dir=run_dir, teacher=None, resume=resume,
                        export_name="teacher.safetensors", log=log, label=f"teacher {tconf.student.name}")
    except ConfigError as exc:
        message = str(exc).replace("student.", "teacher.")
        raise ConfigError(message if message.startswith("teacher") else f"teacher {message}"
                          if message.startswith("model ") else f"teacher: {message}") from None


def task_teacher(config: RunConfig, zoo: Any, log=print) -> tuple[KDModel | None, DatasetBundle, Splits]:
    """A run config's data and its frozen teacher on the run's device (trained and cached on first use).

    For tools that need the teacher outside a distillation run (``kdzoo teacher``, bench teachers
    and reference rows, probes); ``kdzoo.distill`` does the same inside the run.

    Returns:
        ``(teacher, bundle, splits)``; the teacher is in eval mode without parameter gradients,
        or ``None`` when the config has no teacher.
    """
    device = setup_runtime(config)
    run = prepare(config, zoo)
    mean, std = channel_stats(run.bundle, run.splits.train)
    teacher = resolve_teacher(config, run.bundle, run.splits, zoo, mean, std, log=log, members=run.members,
                              train=train_teacher)
    return (None if teacher is None else freeze(teacher.to(device))), run.bundle, run.splits


def write_effective(run_dir: Path, run: PreparedRun, teacher, seeds: dict[int, dict[str, Any]] | None = None) -> None:
    """Write ``RUN/effective.yaml``: what the run worked out from its config, and the code it ran.

    Written before the first seed (budget, splits, normalisation) and again at the end, when the
    seeds' students add their input shape and normalisation. Information only: never read back.
    """
    bundle, splits = run.bundle, run.splits
    mean, std = student_stats(run, teacher)
    derived: dict[str, Any] = {
        "steps_per_epoch": run.steps_per_epoch, "total_steps": run.total_steps,
        "mean": _plain(mean), "std": _plain(std), "data_shape": list(bundle.sample_shape),
        "classes": len(bundle.classes) if bundle.task == "classification" else None,
        "splits": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test),
                   "labelled": len(splits.labelled), "unlabelled": len(splits.unlabelled)},
    }
    if teacher is not None:
        derived["teacher"] = {k: _plain(teacher.meta.get(k)) for k in ("name", "input_shape", "mean", "std", "source")}
    for seed, summary in sorted((seeds or {}).items()):
        if summary.get("student_input"):
            derived.setdefault("student", {})[f"seed-{seed}"] = summary["student_input"]
    record = json.loads(json.dumps({"derived": derived, "code": code_identity(run.members)}, default=str))  # plain data
    write_text(run_dir / "effective.yaml", yaml.safe_dump(record, sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.flatten().tolist()
    return value


def provenance(config: RunConfig) -> dict[str, Any]:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    return {"kdzoo": kdzoo_version(), "torch": torch.__version__, "timm": dist_version("timm"),
            "python": platform.python_version(),
            "git_sha": sha, "threads": torch.get_num_threads(), "seeds": config.train.seeds, "host": platform.node(),
            "world_size": distributed.current().world_size,
            "argv": sys.argv}


def _run_bar(run: PreparedRun, seeds: list[int], main: bool):
    """One progress bar over every seed still to train, so a multi-seed run shows one ETA (``None``: one seed)."""
    config = run.config
    if len(seeds) < 2 or not (config.runtime.progress and main):
        return None
    names = "+".join(s.name for s in config.strategy)
    return steps_progress(run.total_steps * len(seeds), 0, f"{names} {len(seeds)} seeds", leave=False)


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


_MOVED = {"load_run": "kdzoo.bench.run_results", "compare_runs": "kdzoo.bench.run_results"}


def __getattr__(name: str) -> Any:
    """Names that moved out of the run driver, still importable from here until 0.3 (with a warning)."""
    if name in _MOVED:
        warnings.warn(f"kdzoo.train.runs.{name} moved to {_MOVED[name]}.{name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        # importlib: reading results is the bench's (a room above this one); only this old spelling reaches it
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# re-exported for the callers of the names that lived here (tools, tests, plugins' tests)
__all__ = ["PreparedRun", "RunResult", "check_run", "default_name", "distill", "make_trainer", "prepare", "provenance",
           "read_seed_summary", "run_seed", "setup_runtime", "task_teacher", "total_steps", "train_teacher",
           "unused_gpu_note"]
