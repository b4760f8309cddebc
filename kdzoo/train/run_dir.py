"""The run directory's lifecycle, from its creation to its last status.

This module owns everything a run does to its folder apart from training in it: the folder's name
and exclusive creation with its ``config.yaml`` (:func:`new_run_dir`), the bookkeeping of one run as
one context manager (:func:`run_directory`: the owner lock, ``status.json`` running, then done,
interrupted or failed, and the run-index entry), and reading back what a folder recorded (the config
a ``--resume`` continues, each seed's summary, the run's summary, a finished run's :class:`RunResult`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import distributed
from .checkpoint import atomic_path, write_text
from .runindex import record
from .. import safe_yaml
from ..config import RunConfig, make_config
from ..contract.errors import ConfigError, Interrupted, PluginError
from ..data.user import USER_DATA
from ..models.evaluate import mean_std
from ..paths import (check_resumable, create_run_dir, own_run, read_status, remove_run_dir, sweep_temp_files,
                     write_status)


@dataclass
class RunResult:
    """What :func:`kdzoo.train.runs.distill` returns."""

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


def new_run_dir(config: RunConfig, effective: dict[str, Any], main: bool) -> Path:
    """Rank 0 creates the run directory exclusively and writes ``effective`` (the effective config) to its
    ``config.yaml``; every rank gets its path (or the same error)."""
    outcome: Any = None
    if main:
        try:
            outcome = create_run_dir(config.out, config.name, default_name(config))
            write_text(outcome / "config.yaml", yaml.safe_dump(effective, sort_keys=False))
        except ConfigError as exc:
            outcome = exc
    outcome = distributed.broadcast_object(outcome)
    if isinstance(outcome, ConfigError):
        raise outcome
    return Path(outcome)


@dataclass
class RunDirectory:
    """One run's folder while the run is in it (what :func:`run_directory` yields).

    Attributes:
        path: the folder.
        seeds: the seeds' summaries as they finish (a config error before the first one removes a new folder).
        summary: the run's ``summary.json`` content; set by the driver when every seed is done, written on exit.
    """

    path: Path
    config: RunConfig
    main: bool
    created: bool
    status_before: bytes | None = None  # a resume's status.json as it was (restored when the resume is refused)
    seeds: dict[int, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] | None = None


@contextlib.contextmanager
def run_directory(config: RunConfig, owner: contextlib.ExitStack, *, resume: str | Path | None, main: bool,
                  effective: dict[str, Any] | None = None) -> Iterator[RunDirectory]:
    """A run's folder from opening to its last status: the one place a run's state is written.

    Opening creates a new folder (:func:`new_run_dir`, locked through ``owner`` until the caller ends) or
    takes up ``resume`` (temporary files swept, status ``running``). On leaving:

    * normally, with ``summary`` set: ``summary.json``, status ``done`` and the run-index entry;
    * on a config or plugin error: a new folder without a finished seed is removed, a refused resume
      gets its status back, else the run is marked ``failed``;
    * on an interrupt: status ``interrupted`` and the error's hint says how to continue;
    * on any other error: marked ``failed`` (status and index).

    Only rank 0 writes; every error is raised again.
    """
    if resume is None:
        run = RunDirectory(new_run_dir(config, effective or {}, main), config, main, created=True)
        if main:
            owner.enter_context(own_run(run.path))
    else:
        run = RunDirectory(Path(resume), config, main, created=False)
        if main:
            sweep_temp_files(run.path)
            status_file = run.path / "status.json"
            run.status_before = status_file.read_bytes() if status_file.is_file() else b""
            write_status(run.path, "running")
    distributed.barrier()
    try:
        yield run
    except (ConfigError, PluginError) as exc:  # a plugin's malformed term is refused before step 0 too
        if main:
            if run.created and not run.seeds:  # a config error found before any training: leave nothing behind
                remove_run_dir(run.path)
            elif run.status_before is not None:  # a resume refused (e.g. a damaged log): the run stays as it was
                _restore_status(run.path, run.status_before)
            else:
                _mark_failed(config, run.path, exc)
        raise
    except Interrupted as exc:
        exc.hint = f"continue with: kdzoo distill --resume {run.path}"
        if main:
            write_status(run.path, "interrupted")
        raise
    except Exception as exc:
        if main:
            _mark_failed(config, run.path, exc)
        raise
    if main and run.summary is not None:
        summary = run.summary
        write_text(run.path / "summary.json", json.dumps(summary, indent=2, default=str))
        write_status(run.path, "done")
        _index(config, run.path, "done", metric=summary["metric"], mean=summary["test_best_mean"],
               std=summary["test_best_std"])


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
    info = {"seeds": config.train.seeds, **({"error": fields.pop("error")} if "error" in fields else {})}
    record("run", run_dir, info, state=state, strategy="+".join(x.name for x in config.strategy),
           student=config.student.name, teacher=config.teacher.name if config.teacher else None,
           data=config.data.name, **fields)


# -- reading back what a folder recorded -----------------------------------------------------------
def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


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


def read_run_summary(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's ``summary.json``; a missing or damaged one is a one-line error
    (:func:`kdzoo.bench.run_results.load_run` is its public name)."""
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


def finished_result(run_dir: Path, config: RunConfig) -> RunResult | None:
    """A finished run's result as its folder records it (``None`` unless it is done, whole and covers
    every seed): resuming it changes nothing."""
    status = read_status(run_dir) or {}
    if status.get("state") != "done":
        return None
    try:
        summary = read_run_summary(run_dir)
    except ConfigError:
        return None  # a torn summary: the resume rewrites it from the seeds' own summaries
    seeds = {int(k): v for k, v in summary["seeds"].items()}
    if set(seeds) != set(config.train.seeds) or any(
            read_seed_summary(run_dir / f"seed-{seed}" / "summary.json") is None for seed in seeds):
        return None  # a seed's own summary is gone: the resume re-runs that seed
    return RunResult(run_dir, config, seeds, summary.get("teacher"), summary["metric"])


__all__ = ["RunDirectory", "RunResult", "check_resume_objects", "default_name", "finished_result", "is_run_folder",
           "new_run_dir", "read_run_config", "read_run_summary", "read_seed_summary", "run_directory"]
