"""Runs: resolve a config, load data and teacher, train each seed, write the run directory.

Layout of a run directory::

    RUN/config.yaml          effective config: every setting, each strategy's full parameters (re-runnable)
    RUN/effective.yaml       values worked out at run time and the code that ran (information only)
    RUN/summary.json         per-seed results, mean ± std, provenance
    RUN/seed-S/metrics.jsonl one JSON line per evaluation
    RUN/seed-S/checkpoint.pt student, strategy parts, optimiser, schedule, EMA, RNG (atomic, with its SHA-256;
                             the one before it kept as checkpoint.prev.pt)
    RUN/seed-S/student.safetensors (+ .json)  the exported student with its metadata
    RUN/seed-S/summary.json  this seed's result
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from . import distributed
from .checkpoint import atomic_path, resume_point, write_text
from .. import safe_yaml
from ..config import RunConfig, canonical, data_options, make_config, validate
from ..contract.context import RunContext
from ..data import (DatasetBundle, Splits, channel_stats, load_dataset, make_plan, make_splits,
                    steps_per_epoch, to_float)
from .effective import code_identity, effective_config
from ..contract.errors import ConfigError, Interrupted, PluginError
from ..bench.metrics import agreement, compare, count_flops, evaluate, mean_std, primary_metric
from ..models.wrapper import KDModel, save_model
from ..paths import (check_cache_root, check_out_dir, check_resumable, create_run_dir, own_run, read_status,
                     remove_run_dir, sweep_temp_files, write_status)
from ..zoo.stack import build_stack, check_specs
from .trainer import Trainer
from ..models.weights import check_weight_files
from ..models.wrapper import check_student_weights, create_with_weights
from ..versions import dist_version, kdzoo_version


@dataclass
class RunResult:
    """What :func:`distill` returns."""

    run_dir: Path
    config: RunConfig
    seeds: dict[int, dict[str, Any]]
    teacher: dict[str, Any] | None
    metric: str

    def values(self, which: str = "test_best") -> dict[int, float]:
        """The primary test metric by seed (``test_best``: at the validation-selected step)."""
        return {s: r[which][self.metric] for s, r in self.seeds.items()}

    def mean_std(self, which: str = "test_best") -> tuple[float, float]:
        return mean_std(list(self.values(which).values()))


def default_name(config: RunConfig) -> str:
    """The readable stem of a default run name (a unique time/pid/random suffix is added on creation).

    Only letters, digits and ``. _ + -`` survive: a ``:`` (``user:Sequential``, ``imagefolder:PATH``) breaks
    Windows paths, ``scp`` and make, and a ``/`` would nest folders.
    """
    strategy = "+".join(s.name for s in config.strategy)
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", part).strip("-.") or "x"
                    for part in (strategy, config.student.name, config.data.name))


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


def setup_runtime(config: RunConfig) -> torch.device:
    """Threads, determinism, the torchrun process group (if any) and this rank's device."""
    rt = config.runtime
    if rt.threads:
        torch.set_num_threads(rt.threads)
    if rt.deterministic:
        if rt.compile:  # also makes inductor deterministic (importing its config costs 1-2 s)
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:  # the same global flag, without the compiler's config module nothing else here uses
            torch._C._set_deterministic_algorithms(True, warn_only=True)
    use_cuda = rt.device == "cuda" or (rt.device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("runtime.device=cuda but no CUDA device is available (valid: cpu, auto)")
    info = distributed.init_distributed(use_cuda)
    return torch.device("cuda", info.local_rank) if use_cuda else torch.device("cpu")


def unused_gpu_note(device: torch.device) -> str | None:
    """One line when a CUDA device is there but the run stays on the CPU (kdzoo's default device)."""
    if device.type != "cpu" or not torch.cuda.is_available():
        return None
    return (f"note: running on the CPU although CUDA is available ({torch.cuda.get_device_name(0)}); "
            "--device auto (runtime.device: auto) uses it")


def total_steps(config: RunConfig, spe: int) -> int:
    t = config.train
    if t.steps is not None:
        if t.steps < 1:
            raise ConfigError(f"train.steps must be >= 1, got {t.steps}")
        return t.steps
    if t.epochs is None or t.epochs <= 0:
        raise ConfigError("set train.steps or a positive train.epochs")
    return max(1, round(t.epochs * spe))


def run_seed(config: RunConfig, bundle: DatasetBundle, splits: Splits, zoo: Any, seed: int, run_dir: Path | None,
             teacher, resume: bool, export_name: str = "student.safetensors", log=print, bar: Any = None,
             objects: Any = None, label: str | None = None) -> dict[str, Any]:
    """Train one seed; returns its summary (also written to ``run_dir/summary.json``).

    ``bar`` is a progress bar shared by the run's seeds (one ETA for a multi-seed run). ``objects``
    (:class:`kdzoo.user.UserObjects`) holds a caller's own student module and data loader, if any;
    each seed trains its own copy of a student module. ``label`` names this training in progress and
    result lines (default ``seed N``; a teacher's is ``teacher NAME``).
    """
    trainer, resuming = make_trainer(config, bundle, splits, zoo, seed, run_dir, teacher, resume, log, objects, label)
    ctx = trainer.ctx
    main = distributed.current().is_main
    if not main:
        log = _silent
    try:
        summary = _train_and_export(trainer, config, bundle, splits, ctx.task, trainer.target_norm, ctx.device, teacher,
                                    ctx.student, trainer.stack, seed, run_dir, resuming, export_name, main, log, bar)
    except BaseException:
        for logger in trainer.loggers:
            logger.finish("failed")
        raise
    for logger in trainer.loggers:
        logger.finish("ok")
    return summary


def make_trainer(config: RunConfig, bundle: DatasetBundle, splits: Splits, zoo: Any, seed: int, run_dir: Path | None,
                 teacher, resume: bool = False, log=print, objects: Any = None,
                 label: str | None = None) -> tuple[Trainer, bool]:
    """One seed's student, strategy stack, batch plan and :class:`Trainer`, ready to ``fit``.

    :func:`run_seed` trains, tests and exports with it; ``kdzoo tune`` fits it on the validation split only.

    Returns:
        ``(trainer, resuming)``: ``resuming`` when ``run_dir`` holds a checkpoint to continue from.
    """
    device = setup_runtime(config)
    mean, std = student_stats(config, zoo, bundle, splits, teacher)
    task = bundle.task
    target_norm = None
    if task == "regression":
        ytr = bundle.y[torch.as_tensor(splits.train)]
        target_norm = (ytr.mean(0), ytr.std(0).clamp_min(1e-6))
    num_out = len(bundle.classes) if task == "classification" else bundle.y.shape[1]
    torch.manual_seed(seed)
    if objects is not None and objects.student is not None:
        from ..user import student_copy, wrap_module

        s_cfg = config.student
        student = wrap_module(student_copy(objects.student), to_float(bundle.x[[0]]), name=s_cfg.name,
                              classes=bundle.classes, task=task, input_size=s_cfg.input_size, mean=s_cfg.mean,
                              std=s_cfg.std, **s_cfg.kwargs).to(device)
    else:
        student = create_with_weights(config.student, role="student checkpoint", num_classes=num_out, data_mean=mean,
                                      data_shape=bundle.sample_shape, data_std=std, classes=bundle.classes, task=task,
                                      zoo=zoo).to(device)
    spe = steps_per_epoch(splits, config.data)
    dist = distributed.current()
    main = dist.is_main
    if not main:
        log = _silent
    ctx = RunContext(config=config, student=student, teacher=teacher, task=task, classes=list(bundle.classes),
                     data_shape=bundle.sample_shape, seed=seed, device=device, total_steps=total_steps(config, spe),
                     steps_per_epoch=spe, run_dir=run_dir, zoo=zoo, bundle=bundle, splits=splits,
                     rank=dist.rank, world_size=dist.world_size, log=log)
    stack = build_stack(config.strategy, ctx, zoo, config.label_weight).to(device)
    if run_dir is not None and main:
        run_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    resuming = resume and run_dir is not None and resume_point(run_dir) is not None
    if not resuming:
        report = stack.init_student(ctx)
        if report and run_dir is not None and main:
            write_text(run_dir / "init_report.json", json.dumps(report, indent=2, default=str))
    source = stack.data_source(ctx)
    plan = None
    if source is None and objects is not None and _is_loader(objects.train):
        from ..user import UserLoaderPlan

        plan = UserLoaderPlan(objects.train, log)
    elif source is None:  # a data source replaces the real training data: no loader is built
        plan = make_plan(bundle, splits, config.data, seed, stack.uses_unlabelled, target_norm,
                         user_data=objects is not None and objects.has_data, pin_memory=device.type == "cuda")
    torch.manual_seed(seed)
    trainer = Trainer(ctx, stack, plan, target_norm, source, label=label)
    if run_dir is not None and main:  # trackers mirror metrics.jsonl, where rank 0 writes it
        from .loggers import open_loggers

        trainer.loggers = open_loggers(config, zoo, run_dir, seed, canonical(effective_config(config, zoo)))
    return trainer, resuming


def _train_and_export(trainer: Trainer, config: RunConfig, bundle: DatasetBundle, splits: Splits, task: str, target_norm,
                      device: torch.device, teacher, student, stack, seed: int, run_dir: Path | None, resuming: bool,
                      export_name: str, main: bool, log, bar: Any = None) -> dict[str, Any]:
    """Train one seed, test it, export the student and write its summary (the second half of :func:`run_seed`)."""
    started = _cpu_time()
    wall = time.time()
    try:
        result = trainer.fit(run_dir, resume=resuming, bar=bar)
    finally:
        if trainer.plan is not None:
            trainer.plan.close()  # stop the streaming path's workers
    train_seconds = time.time() - wall
    train_cpu_seconds = _cpu_time() - started
    metric, _ = primary_metric(task)
    last_test = _test(trainer.eval_model(), bundle, splits, task, config, target_norm, device)
    trainer.eval_model().load_state_dict(result.best_state)
    best_test = _test(trainer.eval_model(), bundle, splits, task, config, target_norm, device)
    x_test = bundle.test_x if splits.official_test else bundle.x
    follow = {}
    if teacher is not None and (task == "regression" or teacher.meta.get("classes") == list(bundle.classes)):
        follow = agreement(trainer.eval_model(), teacher, x_test, splits.test, task, config.data.eval_batch_size, device)
    sample = to_float(x_test[torch.as_tensor(splits.test[:1])]).to(device)  # a test sample (bundle.x[0] may be train)
    summary = {
        "seed": seed, "steps": result.steps, "test_teacher": follow,
        "student_flops": count_flops(trainer.eval_model(), sample), "best_step": result.best_step, "val_best": result.best_val,
        "val_last": result.last_val, "test_best": best_test, "test_last": last_test,
        "cpu_seconds": _cpu_time() - started, "wall_seconds": time.time() - wall, "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "student_params": sum(p.numel() for p in student.net.parameters()),
        "strategy_params": sum(p.numel() for p in stack.parameters()),
        "student_input": {k: student.meta.get(k) for k in ("input_shape", "mean", "std")},
        "total_steps": trainer.ctx.total_steps, "steps_per_epoch": trainer.ctx.steps_per_epoch,
    }
    if run_dir is not None and main:  # only rank 0 writes
        save_model(trainer.eval_model(), run_dir / export_name, {"val": result.best_val, "test": best_test})
        write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
        for logger in trainer.loggers:
            logger.log(test_metrics(best_test, last_test, follow), result.steps)  # what every table reports
            logger.artifact(run_dir / export_name)
            logger.artifact((run_dir / export_name).with_suffix(".json"))
    distributed.barrier()  # other ranks may read what rank 0 just wrote (a freshly trained teacher)
    log(f"{trainer.label}: test {metric} {best_test[metric]:.4g} (val-selected step {result.best_step}), "
        f"last {last_test[metric]:.4g}, {summary['cpu_seconds']:.1f} CPU s")
    return summary


def test_metrics(best: dict[str, float], last: dict[str, float], follow: dict[str, float]) -> dict[str, float]:
    """A seed's test metrics for trackers: ``test/*`` at the validation-selected step (the number every table
    reports), ``test_last/*`` at the last step, ``test/teacher_*`` how closely the student follows its teacher."""
    out = {f"test/{k}": float(v) for k, v in best.items()}
    out.update({f"test_last/{k}": float(v) for k, v in last.items()})
    out.update({f"test/teacher_{k}": float(v) for k, v in follow.items()})
    return out


def _run_bar(config: RunConfig, splits: Splits, seeds: list[int], main: bool):
    """One progress bar over every seed still to train, so a multi-seed run shows one ETA (``None``: one seed)."""
    if len(seeds) < 2 or not (config.runtime.progress and main):
        return None
    from ..progress import steps_progress

    per_seed = total_steps(config, steps_per_epoch(splits, config.data))
    return steps_progress(per_seed * len(seeds), 0, f"{'+'.join(s.name for s in config.strategy)} {len(seeds)} seeds",
                          leave=False)


def _cpu_time() -> float:
    """CPU seconds of this process plus its finished children (the streaming path's DataLoader
    workers are counted once the plan has stopped them)."""
    times = os.times()  # the children's fields are getrusage(RUSAGE_CHILDREN) on POSIX, 0 on Windows
    return time.process_time() + times.children_user + times.children_system


def _is_loader(data: Any) -> bool:
    from torch.utils.data import DataLoader

    return isinstance(data, DataLoader)


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


def _test(model, bundle: DatasetBundle, splits: Splits, task: str, config: RunConfig, target_norm, device):
    x, y = (bundle.test_x, bundle.test_y) if splits.official_test else (bundle.x, bundle.y)
    return evaluate(model, x, y, splits.test, task, config.data.eval_batch_size, target_norm, device)


def check_model_name(role: str, name: str, zoo: Any) -> None:
    """A registered model or a timm architecture; else one line with the closest names of both."""
    import difflib

    if zoo.model(name) is not None:
        return
    import timm  # only for names kdzoo does not register: a run of registered models never imports it

    if timm.is_model(name):
        return
    registered = sorted(zoo.collect().models)
    close = difflib.get_close_matches(name, registered + timm.list_models(), n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise ConfigError(f"unknown {role} model {name!r}; {hint}valid: {', '.join(registered)} or any name in "
                      "timm.list_models()")


def prepare(config: RunConfig, zoo: Any, objects: Any = None) -> tuple[DatasetBundle, Splits]:
    """Validate what can be validated cheaply, then load data and split it.

    With ``objects`` (:class:`kdzoo.user.UserObjects`), the caller's datasets replace a named
    dataset and the caller's modules replace named models.
    """
    from ..user import user_bundle

    check_run(config, zoo, objects)
    if objects is not None and objects.has_data:
        if config.data.labels_per_class is not None:
            raise ConfigError("data.labels_per_class applies to named datasets; pass the labelled subset as train")
        bundle, splits = user_bundle(objects, config.data)
        check_classes(bundle, "your train data")
        return bundle, splits
    bundle = load_dataset(config.data.name, config.data.root, zoo, **data_options(config))
    check_classes(bundle, f"data {config.data.name!r}")
    check_student_weights(config, bundle, zoo)
    return bundle, make_splits(bundle, config.data)


def check_run(config: RunConfig, zoo: Any, objects: Any = None) -> None:
    """What :func:`prepare` checks before it loads any data: strategies, models, weight files, loggers."""
    from ..data import ALIASES

    user_data = objects is not None and objects.has_data
    name = config.data.name.partition(":")[0]
    task = "classification" if user_data else zoo.dataset(ALIASES.get(name, name)).meta.get("task")
    for cls, _ in check_specs(config.strategy, zoo, task):
        if cls.requires_teacher and config.teacher is None:
            raise ConfigError(f"strategy {cls.name!r} needs a teacher; pass --teacher (a model name or weights file)")
    for role, model in (("student", config.student), ("teacher", config.teacher)):
        given = objects is not None and getattr(objects, role) is not None
        if model is not None and not model.checkpoint and not given:  # a weights file names its own model
            check_model_name(role, model.name, zoo)
    check_weight_files(config, zoo)
    if config.runtime.loggers:
        from .loggers import check_logger_names

        check_logger_names(config.runtime.loggers, zoo)


def check_classes(bundle: DatasetBundle, what: str) -> None:
    """A classification task needs two classes with samples: with one, every prediction is right."""
    if bundle.task != "classification":
        return
    labels = torch.as_tensor(bundle.y)
    present = torch.unique(labels).numel() if labels.numel() else 0
    if len(bundle.classes) < 2 or present < 2:
        names = ", ".join(map(str, bundle.classes[:5])) or "none"
        raise ConfigError(f"{what} has {present} class(es) with samples ({names}); classification needs at least 2")


def train_teacher(tconf: RunConfig, bundle: DatasetBundle, splits: Splits, zoo: Any, *, run_dir: Path, resume: bool,
                  log=print) -> Any:
    """Train a teacher missing from the cache as a plain run of its own (``teacher.resolve_teacher`` calls it).

    In that run the teacher is the model being trained (``tconf.student``); errors about it are reworded to
    name the teacher and its config keys, which is what the user sets.
    """
    try:
        return run_seed(tconf, bundle, splits, zoo, seed=tconf.train.seeds[0], run_dir=run_dir, teacher=None,
                        resume=resume, export_name="teacher.safetensors", log=log, label=f"teacher {tconf.student.name}")
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
    from .teacher import resolve_teacher
    from .trainer import freeze

    device = setup_runtime(config)
    bundle, splits = prepare(config, zoo)
    mean, std = channel_stats(bundle, splits.train)
    teacher = resolve_teacher(config, bundle, splits, zoo, mean, std, log=log, train=train_teacher)
    return (None if teacher is None else freeze(teacher.to(device))), bundle, splits


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The config a run directory recorded (for ``--resume``), checked before anything else is touched."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: no config.yaml there (not a kdzoo run directory)")
    check_resumable(run_dir)
    try:
        data = safe_yaml.load((run_dir / "config.yaml").read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--resume {str(run_dir)!r}: config.yaml is damaged ({' '.join(str(exc).split())})") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"--resume {str(run_dir)!r}: config.yaml holds no mapping")
    # out and name are not recorded (the config re-runs anywhere); a resume continues where the run lies
    return make_config({**data, "out": str(run_dir.parent), "name": run_dir.name})


def check_resume_objects(config: RunConfig, objects: Any, run_dir: str | Path) -> None:
    """A run made from Python objects resumes only with them: modules and datasets are code, so the
    run directory cannot hold them (``kdzoo distill --resume`` of such a run says how to resume it)."""
    from ..user import USER_DATA

    needed = [role for role, used in (("teacher", config.teacher is not None and config.teacher.name.startswith("user:")),
                                      ("student", config.student.name.startswith("user:")),
                                      ("train", config.data.name == USER_DATA)) if used]
    missing = [role for role in needed if objects is None or getattr(objects, role) is None]
    if missing:
        given = ", ".join(f"{role}=..." for role in needed)
        raise ConfigError(f"--resume {str(run_dir)!r}: the run was made from Python objects ({', '.join(needed)}), "
                          f"which a run directory cannot hold; resume it from Python with the same objects: "
                          f"kdzoo.distill(resume={str(run_dir)!r}, {given}) (and val=/test= if you gave them)")


def read_seed_summary(path: Path) -> dict[str, Any] | None:
    """A finished seed's summary, or ``None`` when it is missing or torn (the seed is then re-run)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # written atomically since the start; a torn file is from outside, re-run the seed


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
    from ..user import from_python

    config, objects = from_python(config, teacher=teacher, student=student, train=train, val=val, test=test)
    with contextlib.ExitStack() as owner:
        if resume is not None:
            if _is_run_folder(resume) and int(os.environ.get("RANK", "0")) == 0:
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


def _is_run_folder(path: str | Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


def finished_result(run_dir: Path, config: RunConfig) -> RunResult | None:
    """A finished run's result as its folder records it (``None`` unless it is done, whole and covers
    every seed): resuming it changes nothing."""
    status = read_status(run_dir) or {}
    if status.get("state") != "done":
        return None
    try:
        summary = load_run(run_dir)
    except ConfigError:
        return None  # a torn summary: the resume rewrites it from the seeds' own summaries
    seeds = {int(k): v for k, v in summary["seeds"].items()}
    if set(seeds) != set(config.train.seeds) or any(
            read_seed_summary(run_dir / f"seed-{seed}" / "summary.json") is None for seed in seeds):
        return None  # a seed's own summary is gone: the resume re-runs that seed
    return RunResult(run_dir, config, seeds, summary.get("teacher"), summary["metric"])


def _distill(config: RunConfig, objects: Any, owner: contextlib.ExitStack, *, zoo: Any, resume: str | Path | None,
             log) -> RunResult:
    """:func:`distill` once its config is read: ``owner`` holds the run folder's lock until the caller ends."""
    from ..zoo.plugins import load_zoo

    check_cache_root()  # a KDZOO_CACHE that is a file or cannot be created fails now, not after training
    check_out_dir(config.out)
    zoo = zoo or load_zoo()
    if distributed.current().rank or int(os.environ.get("RANK", "0")):
        log = _silent  # one voice under torchrun
    bundle, splits = prepare(config, zoo, objects)
    device = setup_runtime(config)
    main = distributed.current().is_main
    note = unused_gpu_note(device)
    if note:
        log(note)
    created = False
    status_before: bytes | None = None
    if resume is None:
        run_dir = _new_run_dir(config, zoo, main)
        created = True
        if main:
            owner.enter_context(own_run(run_dir))
    else:
        run_dir = Path(resume)
        if main:
            sweep_temp_files(run_dir)
            status_file = run_dir / "status.json"
            status_before = status_file.read_bytes() if status_file.is_file() else b""
            write_status(run_dir, "running")
    distributed.barrier()
    seeds: dict[int, dict[str, Any]] = {}
    try:
        mean, std = channel_stats(bundle, splits.train)
        from .teacher import below_ce_note, chance_accuracy, near_chance_note, resolve_teacher

        teacher = resolve_teacher(config, bundle, splits, zoo, mean, std, log=log, objects=objects, train=train_teacher)
        teacher_info, near_chance = None, None
        if teacher is not None:
            teacher = teacher.to(device)
            task = bundle.task
            if task == "classification" and teacher.meta.get("classes") == list(bundle.classes):
                teacher_info = {"val": evaluate(teacher, bundle.x, bundle.y, splits.val, task, config.data.eval_batch_size)}
                metric, _ = primary_metric(task)
                log(f"teacher {teacher.meta['name']}: validation {metric} {teacher_info['val'][metric]:.2f}")
                near_chance = near_chance_note(teacher.meta["name"], teacher_info["val"][metric],
                                               chance_accuracy(bundle.y, splits.val))
                if near_chance:
                    log(near_chance)
            else:
                teacher_info = {"note": "teacher label space differs from the data's; no accuracy"}
            teacher_info["meta"] = teacher.meta
        if main and created:  # a resume rewrites it when it ends (a refused resume leaves the run as it was)
            write_effective(run_dir, config, zoo, bundle, splits, teacher)
        todo = []
        for seed in config.train.seeds:
            done = read_seed_summary(run_dir / f"seed-{seed}" / "summary.json") if resume is not None else None
            if done is not None:
                seeds[seed] = done
            else:
                todo.append(seed)
        bar = _run_bar(config, splits, todo, main)
        try:
            for seed in todo:
                seeds[seed] = run_seed(config, bundle, splits, zoo, seed, run_dir / f"seed-{seed}", teacher,
                                       resume=resume is not None, log=log, bar=bar, objects=objects)
        finally:
            if bar is not None:
                bar.close()
    except (ConfigError, PluginError) as exc:  # a plugin's malformed term is refused before step 0 too
        if main:
            if created and not seeds:  # a config error found before any training: leave nothing behind
                remove_run_dir(run_dir)
            elif status_before is not None:  # a resume refused (e.g. a damaged log): the run stays as it was
                _restore_status(run_dir, status_before)
            else:
                _mark_failed(config, run_dir, exc)
        raise
    except Interrupted as exc:
        exc.hint = f"continue with: kdzoo distill --resume {run_dir}"
        if main:
            write_status(run_dir, "interrupted")
        raise
    except Exception as exc:
        if main:
            _mark_failed(config, run_dir, exc)
        raise
    metric, _ = primary_metric(bundle.task)
    result = RunResult(run_dir, config, seeds, teacher_info, metric)
    m, s = result.mean_std()
    summary = {"metric": metric, "test_best_mean": m, "test_best_std": s, "seeds": {str(k): v for k, v in seeds.items()},
               "teacher": teacher_info, "provenance": provenance(config)}
    if main:
        write_effective(run_dir, config, zoo, bundle, splits, teacher, seeds)
        write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        write_status(run_dir, "done")
        _index(config, run_dir, "done", metric=metric, mean=m, std=s)
    spread = f"± {s:.2f} over seeds {config.train.seeds}" if len(seeds) > 1 else f"(1 seed: {config.train.seeds[0]})"
    if teacher_info and "val" in teacher_info and not near_chance and \
            [x.name for x in config.strategy] == ["ce"]:
        note = below_ce_note(teacher.meta["name"], teacher_info["val"]["acc"],
                             mean_std([v["val_best"]["acc"] for v in seeds.values()])[0])
        if note:
            log(note)
    log(f"{'+'.join(x.name for x in config.strategy)}: test {metric} {m:.2f} {spread} -> {run_dir}")
    return result


def write_effective(run_dir: Path, config: RunConfig, zoo: Any, bundle: DatasetBundle, splits: Splits, teacher,
                    seeds: dict[int, dict[str, Any]] | None = None) -> None:
    """Write ``RUN/effective.yaml``: what the run worked out from its config, and the code it ran.

    Written before the first seed (budget, splits, normalisation) and again at the end, when the
    seeds' students add their input shape and normalisation. Information only: never read back.
    """
    mean, std = student_stats(config, zoo, bundle, splits, teacher)
    spe = steps_per_epoch(splits, config.data)
    derived: dict[str, Any] = {
        "steps_per_epoch": spe, "total_steps": total_steps(config, spe),
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
    record = json.loads(json.dumps({"derived": derived, "code": code_identity(config, zoo)}, default=str))  # plain data
    write_text(run_dir / "effective.yaml", yaml.safe_dump(record, sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.flatten().tolist()
    return value


def student_stats(config: RunConfig, zoo: Any, bundle: DatasetBundle, splits: Splits, teacher) -> tuple[Any, Any]:
    """The student's normalisation: the train split's channel statistics, or the teacher's when no member
    reads training data (data-free)."""
    if teacher is not None and any(not cls.reads_train_data for cls, _ in check_specs(config.strategy, zoo)):
        return teacher.meta.get("mean"), teacher.meta.get("std")
    return channel_stats(bundle, splits.train)


def _new_run_dir(config: RunConfig, zoo: Any, main: bool) -> Path:
    """Rank 0 creates the run directory exclusively; every rank gets its path (or the same error)."""
    outcome: Any = None
    if main:
        try:
            stem = default_name(config)
            outcome = create_run_dir(config.out, config.name, stem)
            write_text(outcome / "config.yaml", yaml.safe_dump(effective_config(config, zoo), sort_keys=False))
        except ConfigError as exc:
            outcome = exc
    outcome = distributed.broadcast_object(outcome)
    if isinstance(outcome, ConfigError):
        raise outcome
    return Path(outcome)


def _restore_status(run_dir: Path, before: bytes) -> None:
    path = run_dir / "status.json"
    if before:
        with atomic_path(path) as tmp:
            tmp.write_bytes(before)
    else:
        path.unlink(missing_ok=True)


def _mark_failed(config: RunConfig, run_dir: Path, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    if run_dir.is_dir():
        write_status(run_dir, "failed", error=reason)
    _index(config, run_dir, "failed", error=reason)


def _index(config: RunConfig, run_dir: Path, state: str, **fields: Any) -> None:
    from ..bench.runindex import record

    info = {"seeds": config.train.seeds, **({"error": fields.pop("error")} if "error" in fields else {})}
    record("run", run_dir, info, state=state, strategy="+".join(x.name for x in config.strategy),
           student=config.student.name, teacher=config.teacher.name if config.teacher else None,
           data=config.data.name, **fields)


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's ``summary.json``; a missing or damaged one is a one-line error."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no summary.json (not a finished kdzoo run)")
    try:
        summary = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{str(path)!r} is damaged (not JSON); re-run or --resume that run") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("seeds"), dict) or "metric" not in summary:
        raise ConfigError(f"{str(path)!r} is not a kdzoo run summary (no 'metric'/'seeds')")
    return summary


def compare_runs(a: str | Path, b: str | Path) -> str:
    """The project's paired verdict of run A against run B as one sentence.

    A one-sided paired t-test on the primary test metric (``test_best``) over the seeds both runs
    have (:func:`kdzoo.bench.metrics.compare`); one pair of runs, so no multiple-testing correction.
    """
    ra, rb = load_run(a), load_run(b)
    metric = ra["metric"]
    if rb["metric"] != metric:
        raise ConfigError(f"cannot compare {str(a)!r} ({metric}) with {str(b)!r} ({rb['metric']}): the runs measure "
                          "different things (one task is classification, the other regression); compare runs of one task")
    _, higher = primary_metric("classification" if metric == "acc" else "regression")
    va = {int(k): v["test_best"][metric] for k, v in ra["seeds"].items()}
    vb = {int(k): v["test_best"][metric] for k, v in rb["seeds"].items()}
    c = compare(va, vb, higher)
    return c.line(Path(a).name, Path(b).name)


__all__ = ["RunResult", "compare_runs", "distill", "load_run", "run_seed"]
