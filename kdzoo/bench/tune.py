"""``kdzoo tune``: select a strategy's parameters and the learning rate on the validation split, with Optuna.

One *study* per (task, pair, strategy): Optuna's TPE sampler (seeded) proposes the strategy's declared
parameters (:func:`kdzoo.plugin.param` bounds or ``search=`` ranges, on a log scale where declared) and the
learning rate; each trial trains the run's budget on tuning seeds of its own (never the table's) and
scores the mean best validation accuracy over them, reporting validation accuracy at every evaluation
so that a median pruner stops the trials that trail. ``ce`` gets the same learning-rate search with the
same number of trials, so tuned rows are compared with a tuned baseline.

The tuner never builds the test split: kdzoo's file datasets are read without their test files, and the
test rows of a dataset without an official test split are blanked before any model sees the data (the
train/validation partition is the one every run of the config uses).

Study folder (``--out``, default ``runs/tune/STUDY``)::

    study.db         Optuna's storage (SQLite) unless --storage names another database
    spec.json        what the study searches and how (read back by workers and by the bench)
    best.yaml        the best trial's effective config (a re-runnable run config)
    summary.json     Optuna's study summary: trials by state, the best trial, every trial's params and values
    importances.json parameter importances (fANOVA; once two trials have finished)

A trial is one call, :func:`run_trials` ``(storage, study)``, so many processes or machines (an
executor's jobs) can work on one study through a shared database.
"""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..atomic import write_text
from ..config import RunConfig, canonical, data_options, make_config, to_dict
from ..contract.errors import ConfigError, Interrupted, NonFiniteLoss, unknown
from ..data import LazyImages, channel_stats, load_dataset, make_splits
from ..models.wrapper import check_student_weights
from ..train.effective import effective_config
from ..train.prepared import PreparedRun, prepared_run
from ..train.runs import check_run, make_trainer, setup_runtime, task_teacher
from ..train.teacher import resolve_teacher, teacher_config
from ..zoo.stack import resolve_stack
from .metrics import primary_metric
from .tune_space import Dimension, apply_params, search_space
from ..zoo.plugins import load_zoo

TUNE_EXTRA = "kdzoo tune needs Optuna, which is not installed: pip install 'kdzoo[tune]'"
DEFAULT_SEEDS = (1000,)  # tuning seeds: far from a table's 0..N, and checked against them


def optuna_module():
    """Optuna, or the one-line error naming the extra (an optional dependency: imported on use)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(TUNE_EXTRA) from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats (RDB storage) are marked experimental; kdzoo relies on them only to fail a killed worker's trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# -- the study ---------------------------------------------------------------------------------------
@dataclass
class StudySpec:
    """What a study searches and how: stored in its folder (``spec.json``) and in the storage, so any
    worker with the storage URL and the study's name can run its trials."""
    name: str
    config: dict[str, Any]  # the base run config (plain data); train.seeds are the tuning seeds
    space: list[dict[str, Any]]
    seeds: list[int]
    trials: int
    sampler_seed: int = 0
    prune_warmup: float = 0.25  # no pruning in the first quarter of the budget: early accuracy is noise

    def dimensions(self) -> list[Dimension]:
        return [Dimension(**d) for d in self.space]

    def run_config(self) -> RunConfig:
        return make_config(copy.deepcopy(self.config))


def study_name(config: RunConfig, space: list[Dimension], seeds: list[int]) -> str:
    """A readable, stable name of (task, pair, strategy, budget, search): equal inputs share one study."""
    data = to_dict(config)
    for key in ("out", "name"):
        data.pop(key, None)
    data["train"].pop("seeds", None)
    for key in ("progress", "threads"):
        data["runtime"].pop(key, None)
    payload = canonical([data, [asdict(d) for d in space], sorted(seeds)])
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]
    stem = f"{'+'.join(s.name for s in config.strategy)}_{config.student.name}_{config.data.name}"
    return "".join(c if c.isalnum() or c in "+-_." else "-" for c in stem) + f"-{digest}"


def make_spec(config: RunConfig | dict, zoo: Any, *, trials: int, seeds: list[int] | None = None,
              search: dict[str, Any] | None = None, lr_range: Any = None, sampler_seed: int = 0,
              table_seeds: list[int] | None = None, members_searched: list[str] | None = None) -> StudySpec:
    """Validate a tuning request and name its study (nothing is loaded or written)."""
    config = config if isinstance(config, RunConfig) else make_config(config)
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    seeds = list(seeds) if seeds else list(DEFAULT_SEEDS)
    shared = sorted(set(seeds) & set(table_seeds if table_seeds is not None else config.train.seeds))
    if shared:
        raise ConfigError(f"tuning seeds {seeds} share {shared} with the table's seeds; tune on seeds of its own "
                          f"(--seeds, default {list(DEFAULT_SEEDS)})")
    check_run(config, zoo)
    space = search_space(config, zoo, search, lr_range, members_searched)
    data = to_dict(config)
    data["train"]["seeds"] = seeds
    data["runtime"]["progress"] = False
    base = make_config(data)
    return StudySpec(study_name(base, space, seeds), to_dict(base), [asdict(d) for d in space], seeds, trials,
                     sampler_seed)


def open_study(spec: StudySpec | None, storage: str, name: str | None = None, worker: int = 0,
               warmup_steps: int = 0):
    """Create or load a study; a worker that knows only the name reads the spec from the storage.

    The study always maximises: a trial returns validation accuracy, or minus an error metric.
    """
    optuna = optuna_module()
    storage_obj = open_storage(storage)
    if spec is None:
        try:
            stored = optuna.load_study(study_name=name, storage=storage_obj)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage_obj)]
            raise unknown(f"study in {storage}", name, names) from None
        spec = StudySpec(**stored.user_attrs["kdzoo"])
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + worker, multivariate=len(spec.space) > 1)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup_steps)
    study = optuna.create_study(study_name=spec.name, storage=storage_obj, sampler=sampler, pruner=pruner,
                                direction="maximize", load_if_exists=True)
    if "kdzoo" not in study.user_attrs:
        study.set_user_attr("kdzoo", asdict(spec))
    return study, spec


def open_storage(url: str):
    """Optuna's storage for a database URL, with heartbeats (a killed worker's trial is marked failed);
    a URL it cannot open is a one-line error."""
    optuna = optuna_module()
    if "://" not in url:
        raise ConfigError(f"--storage {url!r}: expected a database URL, e.g. sqlite:////shared/tune.db or "
                          "postgresql://host/db")
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
    except Exception as exc:  # sqlalchemy's errors: a bad scheme, a missing driver, an unreachable server
        raise ConfigError(f"--storage {url!r}: cannot open it ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]})") from None


def default_storage(folder: Path) -> str:
    return f"sqlite:///{(folder / 'study.db').resolve()}"


# -- data the tuner may read -------------------------------------------------------------------------
def tuning_data(config: RunConfig, zoo: Any):
    """The config's dataset and splits with the test split never built.

    kdzoo's file datasets are read without their test files (an empty official test split keeps the
    train/validation partition of every run); a dataset that holds its test rows among the others
    has those rows blanked before anything trains; a plugin's loader is called as usual and its test
    part dropped before splitting. Either way ``splits.test`` is empty.
    """
    bundle = load_dataset(config.data.name, config.data.root, zoo, **data_options(config), test=False)
    if bundle.test_x is not None and len(bundle.test_x):  # a plugin loader that cannot skip its test part
        keep = isinstance(bundle.test_x, torch.Tensor)
        bundle.test_x = bundle.test_x[:0] if keep else LazyImages([], bundle.test_x.channels, bundle.test_x.size)
        bundle.test_y = bundle.test_y[:0]
    check_student_weights(config, bundle, zoo)
    splits = make_splits(bundle, config.data)
    return seal_test(bundle, splits)


def seal_test(bundle: Any, splits: Any):
    """Blank the test rows of ``bundle`` and empty ``splits.test``; indices of the other rows are unchanged,
    so batch plans and the teacher-output cache see exactly what a run sees."""
    test = np.asarray(splits.test, dtype=np.int64)
    if not splits.official_test and len(test):
        rows = torch.as_tensor(test)
        if isinstance(bundle.x, torch.Tensor):
            x = bundle.x.clone()
            x[rows] = 0
        else:  # lazily read files: the test rows point nowhere, so reading one fails loudly
            files = list(bundle.x.files)
            for i in test:
                files[i] = "<test split sealed by kdzoo tune>"
            x = LazyImages(files, bundle.x.channels, bundle.x.size)
        y = bundle.y.clone()
        y[rows] = 0
        bundle = replace(bundle, x=x, y=y)
    return bundle, replace(splits, test=test[:0])


# -- trials --------------------------------------------------------------------------------------------
def _refuse_training(tconf: RunConfig, *args: Any, **kwargs: Any) -> Any:
    raise ConfigError(f"kdzoo tune: the teacher {tconf.student.name} is not trained yet and a tuning run never "
                      "trains one (it would test it); train it first: kdzoo teacher with the same config, or let "
                      "kdzoo tune --suite train the suite's teachers")


def run_trials(storage: str, study: str, trials: int | None = None, *, zoo: Any = None, log=print,
               worker: int = 0) -> Any:
    """Run trials of an existing study until it holds ``trials`` finished (complete or pruned) ones.

    The unit an executor schedules: any process or machine that reaches ``storage`` can call it, and
    as many at once as there are workers (each with its own ``worker`` number, which offsets the
    sampler's seed). Returns the Optuna study.
    """
    optuna = optuna_module()
    zoo = zoo or load_zoo()
    _, spec = open_study(None, storage, study)
    target = spec.trials if trials is None else trials
    config = spec.run_config()
    device = setup_runtime(config)
    bundle, splits = tuning_data(config, zoo)
    run = prepared_run(config, zoo, bundle, splits)
    opened, _ = open_study(spec, storage, worker=worker, warmup_steps=int(run.total_steps * spec.prune_warmup))
    mean, std = channel_stats(bundle, splits.train)
    teacher = resolve_teacher(config, bundle, splits, zoo, mean, std, log=log, members=run.members,
                              train=_refuse_training)
    if teacher is not None:
        teacher = teacher.to(device)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    todo = target - len(opened.get_trials(deepcopy=False, states=finished))
    if todo <= 0:
        return opened
    objective = _objective(spec, run, teacher, log)
    try:
        opened.optimize(objective, n_trials=todo, callbacks=[optuna.study.MaxTrialsCallback(target, states=finished)],
                        gc_after_trial=False)
    except Interrupted as exc:  # the trial in progress is marked failed and not counted
        exc.hint = "the study keeps its finished trials; run the same kdzoo tune command again to continue it"
        raise
    return opened


def _objective(spec: StudySpec, run: PreparedRun, teacher: Any, log):
    """Optuna's objective: the mean best validation score over the tuning seeds, reported as it trains."""
    optuna = optuna_module()
    dims = spec.dimensions()
    metric, higher = primary_metric(run.task)
    sign = 1.0 if higher else -1.0  # the study maximises; an error metric is negated
    per_seed = run.total_steps
    quiet = lambda *a, **k: None  # noqa: E731

    def objective(trial: Any) -> float:
        params = {d.name: d.suggest(trial) for d in dims}
        trial_config = apply_params(run.config, params)
        trial_run = prepared_run(trial_config, run.zoo, run.bundle, run.splits)  # its stack resolved once, for all seeds
        scores = []
        for k, seed in enumerate(spec.seeds):
            trainer, _ = make_trainer(trial_run, seed, None, teacher, log=quiet)

            def report(step: int, val: dict[str, float], offset: int = k * per_seed) -> None:
                trial.report(sign * val[metric], offset + step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"validation {metric} {val[metric]:.4g} at step {offset + step} "
                                             "trails the median of earlier trials")

            trainer.on_validate.append(report)
            try:
                result = trainer.fit(None)
            except NonFiniteLoss as exc:  # a diverging learning rate: stop the trial, keep the study going
                trial.set_user_attr("diverged", " ".join(str(exc).split())[:200])
                raise optuna.TrialPruned("diverged") from None
            finally:
                if trainer.plan is not None:
                    trainer.plan.close()
            scores.append(result.best_val[metric])
        trial.set_user_attr("val_per_seed", scores)
        value = float(np.mean(scores))
        log(f"trial {trial.number}: validation {metric} {value:.4g} with "
            + ", ".join(f"{k}={v:.4g}" for k, v in params.items()))
        return sign * value

    return objective


# -- the command -------------------------------------------------------------------------------------------
def tune(config: RunConfig | dict, *, trials: int = 20, out: str | Path | None = None, storage: str | None = None,
         seeds: list[int] | None = None, search: dict[str, Any] | None = None, lr_range: Any = None,
         sampler_seed: int = 0, jobs: int = 1, zoo: Any = None, log=print, table_seeds: list[int] | None = None,
         train_teacher: bool = True, members_searched: list[str] | None = None) -> dict[str, Any]:
    """Tune one (task, pair, strategy) on the validation split and write its study folder.

    Args:
        config: the run config whose strategy and learning rate are tuned (its ``train.seeds`` are the
            table's seeds, which tuning never uses).
        trials: finished trials the study ends with (a re-run continues a study; none run twice).
        out: the study folder (default ``runs/tune/STUDY``).
        storage: an Optuna database URL shared by workers (default: SQLite in the study folder).
        seeds: tuning seeds (default ``[1000]``).
        search: parameter ranges replacing the declared ones (see :func:`search_space`).
        lr_range: the learning-rate range (default a tenth to ten times the config's, log scale).
        sampler_seed: the TPE sampler's seed (worker ``i`` of ``jobs`` uses ``sampler_seed + i``).
        jobs: worker processes working on the study at once.
        train_teacher: train a teacher missing from the cache first, as ``kdzoo teacher`` does (the
            only step that reads the test split, for the teacher's card); ``False``: a missing teacher is an error.
        members_searched: the stack members whose declared parameters are searched (default: all).

    Returns:
        The study summary (also ``summary.json`` in the study folder).
    """
    optuna_module()
    zoo = zoo or load_zoo()
    spec = make_spec(config, zoo, trials=trials, seeds=seeds, search=search, lr_range=lr_range,
                     sampler_seed=sampler_seed, table_seeds=table_seeds, members_searched=members_searched)
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    folder = Path(out) if out is not None else Path("runs") / "tune" / spec.name
    if storage is not None and storage != default_storage(folder):
        open_storage(storage)  # a bad URL fails before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(folder)
    if train_teacher:
        ensure_teacher(spec.run_config(), zoo, log)
    open_study(spec, url)
    write_text(folder / "spec.json", json.dumps({**asdict(spec), "storage": url}, indent=2))
    log(f"study {spec.name}: {trials} trials over {', '.join(d.name for d in spec.dimensions())} "
        f"on seeds {spec.seeds} ({url})")
    if jobs == 1:
        run_trials(url, spec.name, trials, zoo=zoo, log=log)
    else:
        _run_workers(url, spec.name, trials, jobs)
    return write_outputs(url, spec.name, folder, zoo)


def ensure_teacher(config: RunConfig, zoo: Any, log=print) -> None:
    """Train the config's teacher once, before tuning, if the cache lacks it (kdzoo teacher's recipe)."""
    if config.teacher is None or config.teacher.checkpoint:
        return
    tconf = teacher_config(config)
    if not (Path(tconf.out) / tconf.name / "teacher.safetensors").exists():
        log(f"teacher {config.teacher.name} is not cached: training it first (kdzoo teacher)")
        task_teacher(config, zoo, log=log)


def _worker(url: str, name: str, trials: int, worker: int) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run_trials(url, name, trials, worker=worker, log=lambda *a, **k: None)


def _run_workers(url: str, name: str, trials: int, jobs: int) -> None:
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        for fut in [pool.submit(_worker, url, name, trials, i) for i in range(jobs)]:
            fut.result()


def write_outputs(storage: str, name: str, folder: Path, zoo: Any) -> dict[str, Any]:
    """Write the study's summary, parameter importances and the best trial's effective config."""
    optuna = optuna_module()
    study, spec = open_study(None, storage, name)
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in (states.COMPLETE, states.PRUNED, states.FAIL,
                                                                          states.RUNNING)}
    summary: dict[str, Any] = {"study": name, "storage": storage, "direction": study.direction.name.lower(),
                               "seeds": spec.seeds, "search": spec.space, "trials": counts,
                               "sampler": f"TPESampler(seed={spec.sampler_seed})",
                               "pruner": f"MedianPruner(n_startup_trials=3, no pruning in the first "
                                         f"{spec.prune_warmup:.0%} of the budget)",
                               "rows": [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
                                         "params": t.params, "reported": len(t.intermediate_values), **t.user_attrs}
                                        for t in trials]}
    if counts["complete"]:
        best = study.best_trial
        best_config = apply_params(spec.run_config(), best.params)
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params}
        best_effective = effective_config(best_config, resolve_stack(best_config.strategy, zoo))
        write_text(folder / "best.yaml", yaml.safe_dump(best_effective, sort_keys=False))
    importances: dict[str, float] = {}
    if counts["complete"] >= 2 and spec.space:
        try:
            importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError) as exc:  # e.g. every finished trial scored the same
            importances = {"note": f"not computed: {' '.join(str(exc).split())[:160]}"}  # type: ignore[dict-item]
    write_text(folder / "importances.json", json.dumps(importances, indent=2))
    write_text(folder / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def best_params(storage: str, name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """A study's best parameters and its trial counts (``complete``, ``pruned``); a study without a
    finished trial is a one-line error."""
    optuna = optuna_module()
    study, _ = open_study(None, storage, name)
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {"complete": sum(t.state == states.COMPLETE for t in trials),
              "pruned": sum(t.state == states.PRUNED for t in trials)}
    if not counts["complete"]:
        raise ConfigError(f"study {name!r} in {storage} has no finished trial yet; run kdzoo tune first")
    return dict(study.best_trial.params), counts


__all__ = ["Dimension", "StudySpec", "apply_params", "best_params", "make_spec", "run_trials", "search_space",
           "seal_test", "study_name", "tune", "tuning_data", "write_outputs"]
