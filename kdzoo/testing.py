"""Conformance checks any plugin author runs on a strategy (kdzoo's own tests run them on all), and the
kill-and-resume drill that proves a strategy's state survives a hard stop.

    from kdzoo.testing import check_strategy
    def test_my_strategy():
        check_strategy("my-strategy")

The drill runs the real CLI in a subprocess, stops it with a signal once it has checkpointed past a
step, resumes it, and leaves the comparison with an uninterrupted run to the test::

    from kdzoo.testing import finish_run, finished, kill_and_resume
    def test_my_strategy_resumes_exactly(tmp_path):
        args = ["distill", "--strategy", "my-strategy", "--steps", "60", "--set", "train.checkpoint_every=10"]
        finish_run(args, tmp_path / "whole")
        kill_and_resume(args, tmp_path / "cut", min_step=20)
        assert finished(tmp_path / "cut") == finished(tmp_path / "whole")
"""

from __future__ import annotations

import copy
import json
import math
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch
from safetensors.torch import load_file

from .config import DataConfig, ModelConfig, RunConfig, StrategySpec, TrainConfig
from .contract.context import RunContext
from .data import BatchPlan, DatasetBundle, make_splits
from .models.wrapper import create_model
from .contract.errors import ConfigError, PluginError
from .zoo.plugins import Zoo, check_strategy_class, load_zoo
from .zoo.stack import Member, instantiate_stack, resolve_stack
from .train.trainer import Trainer, freeze


SMOKE = "smoke"  # the preset that keeps a conformance run small


def tiny_bundle(task: str = "classification", num_classes: int = 4, n: int = 64, size: int = 16,
                seed: int = 0) -> DatasetBundle:
    """A small random dataset (images ``[n, 1, size, size]``, or 8-d vectors for regression)."""
    g = torch.Generator().manual_seed(seed)
    if task == "regression":
        x = torch.randn(n, 8, generator=g)
        return DatasetBundle(x, (x[:, :1] * 2 + 0.1 * torch.randn(n, 1, generator=g)), task="regression",
                             classes=["target"], name="tiny-regression")
    y = torch.arange(n) % num_classes
    x = torch.rand(n, 1, size, size, generator=g) * 0.2
    x[:, :, : size // 2, : size // 2] += (y.float() / num_classes).view(-1, 1, 1, 1)
    return DatasetBundle(x.clamp(0, 1), y, classes=[str(i) for i in range(num_classes)], name="tiny")


@dataclass
class TinyRun:
    """A strategy built on tiny models, ready to step: what :func:`check_strategy` checks.

    Attributes:
        config: the run's config (2 steps, batch 16).
        ctx: the run context (CPU, seed 0).
        stack: the built strategy stack (``init_student`` already applied).
        trainer: the trainer; ``trainer.train_step(step)`` returns the logged loss terms.
        teacher_state: a copy of the teacher's ``state_dict`` taken right after it was built.
        members: the stack's members as resolved once (a fresh instance is built from them).
    """

    config: RunConfig
    ctx: RunContext
    stack: Any
    trainer: Trainer
    teacher_state: dict[str, torch.Tensor]
    members: tuple[Member, ...] = ()


def tiny_run(name: str, params: dict[str, Any] | None = None, *, teacher: ModelConfig | None = None,
             student: ModelConfig | None = None, zoo: Zoo | None = None, preset: str | None = None) -> TinyRun:
    """Build strategy ``name`` on tiny models and data, seeded, as :func:`check_strategy` runs it.

    Args: as :func:`check_strategy`.
    """
    zoo = zoo or load_zoo()
    cls = zoo.strategy(name).obj
    task = "classification" if "classification" in cls.tasks else sorted(cls.tasks)[0]
    bundle = tiny_bundle(task)
    default_model = "lenet5" if task == "classification" else "mlp"
    teacher = teacher or ModelConfig(default_model, {"batchnorm": True} if task == "classification" else {"hidden": [16]})
    student = student or ModelConfig(default_model, {"width": 0.5} if task == "classification" else {"hidden": [8]})
    if params is None and preset is None and SMOKE in cls.presets:
        preset = SMOKE
    params = dict(params or {})
    config = RunConfig(student=student, teacher=teacher, strategy=[StrategySpec(name, params, preset)],
                       data=DataConfig(name="tiny", batch_size=16, labels_per_class=8 if task == "classification" else None),
                       train=TrainConfig(steps=2, epochs=None))
    splits = make_splits(bundle, config.data)
    num_out = len(bundle.classes) if task == "classification" else 1

    def build(cfg: ModelConfig):
        return create_model(cfg, num_classes=num_out, data_shape=bundle.sample_shape, data_mean=None, data_std=None,
                            classes=bundle.classes, task=task, zoo=zoo)

    torch.manual_seed(0)
    t_model = freeze(build(teacher))
    t_model.train()  # a teacher left in train mode must still not move: the trainer freezes it
    teacher_state = {k: v.clone() for k, v in t_model.state_dict().items()}
    s_model = build(student)
    ctx = RunContext(config=config, student=s_model, teacher=t_model, task=task, classes=bundle.classes,
                     data_shape=bundle.sample_shape, seed=0, device=torch.device("cpu"), total_steps=2,
                     steps_per_epoch=2, zoo=zoo, bundle=bundle, splits=splits)
    members = resolve_stack(config.strategy, zoo, task)
    stack = instantiate_stack(members, ctx)
    stack.init_student(ctx)
    source = stack.data_source(ctx)
    plan = None if source is not None else BatchPlan(bundle, splits, config.data, 0, stack.uses_unlabelled)
    return TinyRun(config, ctx, stack, Trainer(ctx, stack, plan, source=source), teacher_state, members)


def check_strategy(name: str, params: dict[str, Any] | None = None, *, teacher: ModelConfig | None = None,
                   student: ModelConfig | None = None, zoo: Zoo | None = None, preset: str | None = None) -> dict[str, float]:
    """Run two optimiser steps of strategy ``name`` on tiny models and check the contract.

    Checks: the strategy registered (else the plugin's load error); its ``Config`` defaults match
    their field types and bounds; its student needs keep the logits while the hard-label term is
    weighted; every loss term is a 0-d floating tensor on the student's device, with a graph when
    weighted (else the trainer's one-line :class:`~kdzoo.PluginError`, raised as it is), and finite;
    the teacher's parameters get no gradient and its BN statistics do not move; the student and every
    trainable strategy parameter get gradients;
    the strategy's ``state_dict`` round-trips into a fresh instance. Each trainable strategy
    parameter must get a gradient in at least one of the steps (a stage may leave a part idle).

    Args:
        name: registered strategy name (``DIST:NAME`` for one that two distributions offer).
        params: strategy parameters (default: the strategy's ``smoke`` preset, when it has one).
        teacher: teacher model (default: ``lenet5`` with batch norm).
        student: student model (default: half-width ``lenet5``).

    Returns:
        The logged loss terms of the last step.
    """
    zoo = (zoo or load_zoo()).collect()
    try:
        entry = zoo.strategy(name)
    except ConfigError as exc:  # not registered, ambiguous, or its plugin failed to load: the reason is in the line
        errors = [f"{r.name}: {r.error}" for r in zoo.plugins.values() if r.error and r.error not in str(exc)]
        raise AssertionError(f"strategy {name!r} cannot be used: {exc}"
                             + (f"; plugin errors: {'; '.join(errors)}" if errors else "")) from exc
    try:
        check_strategy_class(entry.obj)
    except PluginError as exc:
        raise AssertionError(str(exc) + (f" ({exc.where})" if getattr(exc, "where", "") else "")) from exc
    run = tiny_run(name, params, teacher=teacher, student=student, zoo=zoo, preset=preset)
    ctx, stack, trainer = run.ctx, run.stack, run.trainer
    t_model, s_model = ctx.teacher, ctx.student
    logged: dict[str, float] = {}
    got_grad: set[str] = set()  # a strategy part may idle in one stage (FitNets' regressor after the hint stage)
    for step in range(2):
        logged = trainer.train_step(step)
        got_grad |= {n for n, p in stack.named_parameters() if p.grad is not None}
    for term, value in logged.items():
        assert math.isfinite(value), f"{name}: loss term {term!r} is not finite ({value})"
    assert all(p.grad is None for p in t_model.parameters()), f"{name}: gradient reached the teacher's parameters"
    for key, value in t_model.state_dict().items():
        assert torch.equal(value, run.teacher_state[key]), f"{name}: teacher tensor {key!r} changed during training"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in s_model.parameters()), f"{name}: no gradient reached the student"
    for pname, p in stack.named_parameters():
        if p.requires_grad:
            assert pname in got_grad, f"{name}: strategy parameter {pname!r} got no gradient"
    fresh = instantiate_stack(run.members, ctx)
    fresh.load_state_dict(copy.deepcopy(stack.state_dict()))
    for (k, a), (_, b) in zip(stack.state_dict().items(), fresh.state_dict().items()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), f"{name}: state {k!r} did not round-trip"
    return logged


KDZOO = (sys.executable, "-m", "kdzoo")  # the CLI in a fresh interpreter (a spy script or torchrun may stand in)
FORKED = "forked"  # the CLI in a forked child of this process: no interpreter and torch start-up (~4 CPU s a run)
TIMINGS = ("cpu_seconds", "wall_seconds", "train_seconds", "train_cpu_seconds")  # differ between identical runs
Launcher = Union[Sequence[str], str]


class ForkedRun:
    """``python -m kdzoo ARGS`` run in a forked child of this process, with :class:`subprocess.Popen`'s
    interface (``pid``, ``poll``, ``wait``, ``communicate``, ``returncode``, ``stdout``/``stderr`` to read).

    The child is a real process (a signal or SIGKILL reaches it alone); it skips the interpreter's and
    torch's start-up because it inherits this process's imports. It runs the CLI as ``python -m kdzoo``
    does, with ``env`` as its whole environment and SIGINT/SIGTERM back at their defaults.
    """

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self._out, self._err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        sys.stdout.flush()
        sys.stderr.flush()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into the caller (os._exit skips pytest's atexit)
            code = 1
            try:
                os.dup2(self._out.fileno(), 1)
                os.dup2(self._err.fileno(), 2)
                sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
                if env is not None:
                    os.environ.clear()
                    os.environ.update(env)
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                sys.argv = ["kdzoo", *args]
                # pytest's assertion-rewriting import hook cannot give runpy a module's code; it rewrites
                # test modules, none of which the CLI imports
                sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "_pytest.assertion.rewrite"]
                runpy.run_module("kdzoo", run_name="__main__", alter_sys=True)  # what `python -m kdzoo` runs
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - the child reports whatever ended it, then exits
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)  # -9 for SIGKILL, as Popen says
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(["kdzoo", "(forked)"], timeout)
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.stdout.read(), self.stderr.read()

    @property
    def stdout(self):
        self._out.seek(0)  # the child shares the file's offset: read from the start
        return self._out

    @property
    def stderr(self):
        self._err.seek(0)
        return self._err


def _out_name(run_dir: Path) -> list[str]:
    return ["--out", str(Path(run_dir).parent), "--name", Path(run_dir).name]


def _launch(launcher: Launcher, args: Sequence[str], env: dict[str, str] | None) -> subprocess.Popen | ForkedRun:
    if launcher == FORKED:
        return ForkedRun(args, env)
    return subprocess.Popen([*launcher, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _to_the_end(proc: subprocess.Popen | ForkedRun, timeout: float) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err


def start_run(args: Sequence[str], run_dir: str | Path, *, env: dict[str, str] | None = None,
              launcher: Launcher = KDZOO) -> subprocess.Popen | ForkedRun:
    """Start ``launcher args --out PARENT --name NAME`` (the run lands in ``run_dir``) as a real process.

    Args:
        args: the command line after the launcher (``["distill", "--strategy", "kd", ...]``).
        run_dir: where the run's folder goes.
        env: the process environment (default: this process's).
        launcher: what runs the arguments: the CLI in a fresh interpreter (:data:`KDZOO`), or forked from
            this process (:data:`FORKED`), or a wrapper script, or ``torchrun``.
    """
    return _launch(launcher, [*args, *_out_name(Path(run_dir))], env)


def finish_run(args: Sequence[str], run_dir: str | Path, *, env: dict[str, str] | None = None,
               launcher: Launcher = KDZOO, timeout: float = 600) -> None:
    """Run ``args`` to the end in a real process, into ``run_dir`` (an uninterrupted reference run).

    Raises:
        AssertionError: the process exits non-zero (its stderr in the message).
    """
    _to_the_end(start_run(args, run_dir, env=env, launcher=launcher), timeout)


def resume_run(run_dir: str | Path, *, env: dict[str, str] | None = None, launcher: Launcher = KDZOO,
               timeout: float = 600) -> None:
    """``distill --resume run_dir`` to the end, in a real process.

    Raises:
        AssertionError: the process exits non-zero (its stderr in the message).
    """
    _to_the_end(_launch(launcher, ["distill", "--resume", str(run_dir)], env), timeout)


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, read from ``/proc`` (``torchrun`` starts each rank in its own session)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def logged_step(run_dir: str | Path, seed: int = 0) -> int:
    """The last step ``run_dir``'s seed logged to ``metrics.jsonl`` (-1: none yet)."""
    metrics = Path(run_dir) / f"seed-{seed}" / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    return max((json.loads(line)["step"] for line in lines if line.strip()), default=-1)


@dataclass
class Stopped:
    """A run :func:`stop_after_step` stopped.

    Attributes:
        code: its exit status (``-9`` for SIGKILL; ``128 + 15`` for a SIGTERM the trainer caught).
        stderr: what it wrote to stderr.
    """

    code: int
    stderr: str


def stop_after_step(proc: subprocess.Popen | ForkedRun, run_dir: str | Path, min_step: int, sig: int = signal.SIGKILL, *,
                    whole_tree: bool = False, seed: int = 0, timeout: float = 300) -> Stopped:
    """Send ``sig`` to ``proc`` once its run has logged ``min_step`` or later (a checkpoint exists by then
    when ``train.checkpoint_every`` divides ``min_step``), and wait for it to end.

    Args:
        whole_tree: signal every descendant too, and wait until they are gone (a DDP launcher's ranks:
            SIGKILL to the launcher alone would leave them running, holding the run's lock).

    Raises:
        AssertionError: the run ended before the signal, or logged no such step within ``timeout`` seconds.
    """
    deadline = time.time() + timeout
    while logged_step(run_dir, seed) < min_step:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be stopped: {proc.stderr.read()}")
        if time.time() > deadline:
            raise AssertionError(f"the run logged no step {min_step} within {timeout} s")
        time.sleep(0.02)
    ranks = descendants(proc.pid) if whole_tree else []
    for pid in [proc.pid, *ranks]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # a rank that ended on its own meanwhile
            pass
    _, err = proc.communicate(timeout=120)
    while any(alive(pid) for pid in ranks):  # the run's lock names a rank: wait for it to be gone
        time.sleep(0.05)
    return Stopped(proc.returncode, err)


def kill_and_resume(args: Sequence[str], run_dir: str | Path, min_step: int, sig: int = signal.SIGKILL, *,
                    env: dict[str, str] | None = None, launcher: Launcher = KDZOO, whole_tree: bool = False,
                    timeout: float = 600) -> Stopped:
    """The drill: start ``args`` in a real process, stop it with ``sig`` once it has logged ``min_step``,
    check that it did not finish, then resume it to the end.

    Compare the result with an uninterrupted run of the same ``args`` (:func:`finish_run`, then
    :func:`finished` on both).

    Returns:
        How the stopped process ended (check its code and what it said).
    """
    stopped = stop_after_step(start_run(args, run_dir, env=env, launcher=launcher), run_dir, min_step, sig,
                              whole_tree=whole_tree, timeout=timeout)
    assert not list(Path(run_dir).glob("seed-*/summary.json")), "the stopped run finished a seed"
    resume_run(run_dir, env=env, launcher=launcher, timeout=timeout)
    return stopped


def finished(run_dir: str | Path, seed: int = 0, *, weights: bool = False) -> tuple:
    """What a resumed run must share with an uninterrupted one: the seed's summary (timings left out)
    and its ``metrics.jsonl`` text, and with ``weights`` its student's tensors (compare with :func:`same_weights`)."""
    folder = Path(run_dir) / f"seed-{seed}"
    summary = json.loads((folder / "summary.json").read_text())
    for key in TIMINGS:
        summary.pop(key, None)
    if not weights:
        return summary, (folder / "metrics.jsonl").read_text()
    return summary, (folder / "metrics.jsonl").read_text(), load_file(folder / "student.safetensors")


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same names and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


__all__ = ["FORKED", "KDZOO", "SMOKE", "ForkedRun", "Stopped", "TinyRun", "alive", "check_strategy", "descendants", "finish_run",
           "finished", "kill_and_resume", "logged_step", "resume_run", "same_weights", "start_run",
           "stop_after_step", "tiny_bundle", "tiny_run"]
