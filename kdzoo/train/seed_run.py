"""One seed of a run: its runtime, its trainer, its training, its test and its exported student.

This module owns what happens per seed once a run is prepared: the runtime (threads, determinism,
device, the torchrun group: :func:`setup_runtime`), making the seed's student, strategy stack, batch
plan and :class:`~kdzoo.train.trainer.Trainer` (:func:`make_trainer`, which ``kdzoo tune`` fits on its
own), and :func:`run_seed`: training, the test metrics at the validation-selected and the last step,
the exported student and the seed's ``summary.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from . import distributed
from .checkpoint import resume_point, write_text
from .effective import effective_config
from .prepared import PreparedRun, student_stats
from .trainer import Trainer
from ..config import RunConfig, canonical
from ..contract.context import RunContext
from ..contract.errors import ConfigError
from ..data import DatasetBundle, Splits, make_plan, to_float
from ..data.user import UserLoaderPlan
from ..loggers import open_loggers
from ..models.evaluate import agreement, count_flops, evaluate, primary_metric
from ..models.user import student_copy, wrap_module
from ..models.wrapper import create_with_weights, save_model
from ..zoo.stack import instantiate_stack


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


def run_seed(run: PreparedRun, seed: int, run_dir: Path | None, teacher, resume: bool,
             export_name: str = "student.safetensors", log=print, bar: Any = None,
             label: str | None = None) -> dict[str, Any]:
    """Train one seed of a prepared run; returns its summary (also written to ``run_dir/summary.json``).

    ``bar`` is a progress bar shared by the run's seeds (one ETA for a multi-seed run). A caller's own
    student module (``run.objects``) is copied for each seed. ``label`` names this training in progress
    and result lines (default ``seed N``; a teacher's is ``teacher NAME``).
    """
    trainer, resuming = make_trainer(run, seed, run_dir, teacher, resume, log, label)
    main = distributed.current().is_main
    if not main:
        log = _silent
    try:
        summary = _train_and_export(trainer, run, teacher, seed, run_dir, resuming, export_name, main, log, bar)
    except BaseException:
        for logger in trainer.loggers:
            logger.finish("failed")
        raise
    for logger in trainer.loggers:
        logger.finish("ok")
    return summary


def make_trainer(run: PreparedRun, seed: int, run_dir: Path | None, teacher, resume: bool = False, log=print,
                 label: str | None = None) -> tuple[Trainer, bool]:
    """One seed's student, strategy stack (the run's resolved members, instantiated), batch plan and
    :class:`Trainer`, ready to ``fit``.

    :func:`run_seed` trains, tests and exports with it; ``kdzoo tune`` fits it on the validation split only.

    Returns:
        ``(trainer, resuming)``: ``resuming`` when ``run_dir`` holds a checkpoint to continue from.
    """
    config, bundle, splits, zoo, objects = run.config, run.bundle, run.splits, run.zoo, run.objects
    device = setup_runtime(config)
    mean, std = student_stats(run, teacher)
    task = bundle.task
    target_norm = None
    if task == "regression":
        ytr = bundle.y[torch.as_tensor(splits.train)]
        target_norm = (ytr.mean(0), ytr.std(0).clamp_min(1e-6))
    num_out = len(bundle.classes) if task == "classification" else bundle.y.shape[1]
    torch.manual_seed(seed)
    if objects is not None and objects.student is not None:
        s_cfg = config.student
        student = wrap_module(student_copy(objects.student), to_float(bundle.x[[0]]), name=s_cfg.name,
                              classes=bundle.classes, task=task, input_size=s_cfg.input_size, mean=s_cfg.mean,
                              std=s_cfg.std, **s_cfg.kwargs).to(device)
    else:
        student = create_with_weights(config.student, role="student checkpoint", num_classes=num_out, data_mean=mean,
                                      data_shape=bundle.sample_shape, data_std=std, classes=bundle.classes, task=task,
                                      zoo=zoo).to(device)
    dist = distributed.current()
    main = dist.is_main
    if not main:
        log = _silent
    ctx = RunContext(config=config, student=student, teacher=teacher, task=task, classes=list(bundle.classes),
                     data_shape=bundle.sample_shape, seed=seed, device=device, total_steps=run.total_steps,
                     steps_per_epoch=run.steps_per_epoch, run_dir=run_dir, zoo=zoo, bundle=bundle, splits=splits,
                     rank=dist.rank, world_size=dist.world_size, log=log)
    stack = instantiate_stack(run.members, ctx, config.label_weight).to(device)
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
        plan = UserLoaderPlan(objects.train, log)
    elif source is None:  # a data source replaces the real training data: no loader is built
        plan = make_plan(bundle, splits, config.data, seed, stack.uses_unlabelled, target_norm,
                         user_data=objects is not None and objects.has_data, pin_memory=device.type == "cuda")
    torch.manual_seed(seed)
    trainer = Trainer(ctx, stack, plan, target_norm, source, label=label)
    if run_dir is not None and main:  # trackers mirror metrics.jsonl, where rank 0 writes it
        trainer.loggers = open_loggers(config, zoo, run_dir, seed, canonical(effective_config(config, run.members)))
    return trainer, resuming


def _train_and_export(trainer: Trainer, run: PreparedRun, teacher, seed: int, run_dir: Path | None, resuming: bool,
                      export_name: str, main: bool, log, bar: Any = None) -> dict[str, Any]:
    """Train one seed, test it, export the student and write its summary (the second half of :func:`run_seed`)."""
    config, bundle, splits, task = run.config, run.bundle, run.splits, run.task
    device, student, stack, target_norm = trainer.ctx.device, trainer.ctx.student, trainer.stack, trainer.target_norm
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


def _cpu_time() -> float:
    """CPU seconds of this process plus its finished children (the streaming path's DataLoader
    workers are counted once the plan has stopped them)."""
    times = os.times()  # the children's fields are getrusage(RUSAGE_CHILDREN) on POSIX, 0 on Windows
    return time.process_time() + times.children_user + times.children_system


def _is_loader(data: Any) -> bool:
    return isinstance(data, DataLoader)


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


def _test(model, bundle: DatasetBundle, splits: Splits, task: str, config: RunConfig, target_norm, device):
    x, y = (bundle.test_x, bundle.test_y) if splits.official_test else (bundle.x, bundle.y)
    return evaluate(model, x, y, splits.test, task, config.data.eval_batch_size, target_norm, device)


__all__ = ["make_trainer", "run_seed", "setup_runtime", "test_metrics", "unused_gpu_note"]
