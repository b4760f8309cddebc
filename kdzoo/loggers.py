"""Experiment trackers: the trainer's metrics, also sent to TensorBoard, MLflow or a plugin's logger.

This module owns the logger types (:class:`RunLogger`, :class:`LoggerContext`), kdzoo's own loggers
(registered by the built-in plugin, :mod:`kdzoo.zoo.builtin`) and opening the loggers a run names
(:func:`open_loggers`, called by the trainer's run driver). It sits on the bottom floor so that both
import it downwards; ``kdzoo.train.loggers`` re-exports it (its old path).

``metrics.jsonl`` stays the source of truth; a logger mirrors it. Loggers are registered through the
``register_loggers`` hook and switched on by name in ``runtime.loggers``; each is built per seed by
``factory(LoggerContext)`` and receives, on rank 0 only:

    ``start(params)``            the effective config, flattened to dotted keys;
    ``log(metrics, step)``       every step: each loss term (``train/TERM``), ``train/loss``, ``lr``
                                 and ``train/samples_per_s``; at evaluations also ``val/*`` and ``epoch``;
                                 once at the end of the seed (at its last step) ``test/*`` (at the
                                 validation-selected step: what tables report), ``test_last/*`` and
                                 ``test/teacher_*`` (agreement with the teacher);
    ``artifact(path)``           the exported student (and its metadata file);
    ``finish(status)``           ``ok`` or ``failed``.

kdzoo's own ``tensorboard`` and ``mlflow`` loggers import their packages only when switched on
(``pip install kdzoo[trackers]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .atomic import write_text
from .contract.errors import ConfigError


class RunLogger(Protocol):
    """What the trainer calls on a logger (see the module docstring)."""

    def start(self, params: dict[str, Any]) -> None: ...

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def artifact(self, path: Path) -> None: ...

    def finish(self, status: str) -> None: ...


@dataclass
class LoggerContext:
    """What a logger factory gets.

    Attributes:
        run_dir: this seed's run directory (``RUN/seed-S``).
        run_name: the run's directory name (``RUN``).
        seed: the seed.
        out: the runs root (``config.out``); a local store shared by runs lives here.
        tracking_uri: ``runtime.tracking_uri`` (``None``: the logger's local default).
        config: the effective :class:`kdzoo.RunConfig`.
    """

    run_dir: Path
    run_name: str
    seed: int
    out: Path
    tracking_uri: str | None
    config: Any


def flat_params(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optim.lr": 0.002, "strategy": "[...]"}``: nested mappings as dotted keys, lists as JSON."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    if isinstance(data, (list, tuple)):
        return {prefix[:-1]: json.dumps(data, default=str)}
    return {prefix[:-1]: data}


def open_loggers(config: Any, zoo: Any, run_dir: Path, seed: int, settings: dict[str, Any]) -> list[RunLogger]:
    """The loggers ``runtime.loggers`` names, started with ``settings`` flattened.

    Args:
        settings: the run's effective config as plain data (every strategy parameter resolved,
            numbers canonical), so a resumed seed logs exactly what it logged first.
    """
    names = list(config.runtime.loggers)
    if not names:
        return []
    check_logger_names(names, zoo)
    ctx = LoggerContext(run_dir=run_dir, run_name=run_dir.parent.name, seed=seed, out=Path(config.out),
                        tracking_uri=config.runtime.tracking_uri, config=config)
    params = flat_params(settings)
    params["seed"] = seed
    loggers = []
    for name in names:
        logger = zoo.loggers[name].obj(ctx)
        logger.start(params)
        loggers.append(logger)
    return loggers


def check_logger_names(names: list[str], zoo: Any) -> None:
    """Every name in ``runtime.loggers`` is registered; else one line naming the valid ones."""
    import importlib.util

    installed = zoo.collect().loggers
    for name in names:
        if name not in installed:
            raise ConfigError(f"runtime.loggers: unknown logger {name!r} (valid: {', '.join(sorted(installed)) or 'none'})")
        package = installed[name].meta.get("requires")  # checked now, before the run directory exists
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"runtime.loggers: {name!r} needs the {package} package, which is not installed "
                              f"(pip install {installed[name].meta.get('install', package)})")


def _require(module: str, name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"runtime.loggers: {name!r} needs the {name} package: pip install 'kdzoo[trackers]'") from None


# -- built-in loggers -------------------------------------------------------------------------------------
class TensorBoardLogger:
    """Event files under ``RUN/seed-S/tensorboard`` (``tensorboard --logdir RUN``), one scalar per metric."""

    def __init__(self, ctx: LoggerContext) -> None:
        _require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(ctx.run_dir / "tensorboard"))

    def start(self, params: dict[str, Any]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(params.items()))
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows, 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def artifact(self, path: Path) -> None:
        self.writer.add_text("export", str(path), 0)

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status, 0)
        self.writer.close()


class MLflowLogger:
    """One MLflow run per seed, in experiment ``kdzoo``.

    Without ``runtime.tracking_uri`` the store is embedded: ``sqlite:///OUT/mlflow.db`` with artefacts
    under ``OUT/mlartifacts`` (``mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db``); with it,
    that server or store. Step metrics are buffered and sent in batches at evaluations. A resumed
    seed continues its MLflow run (its id is kept in ``RUN/seed-S/mlflow_run_id``).
    """

    experiment = "kdzoo"
    RUN_ID_FILE = "mlflow_run_id"  # in RUN/seed-S: the run a resumed seed continues

    def __init__(self, ctx: LoggerContext) -> None:
        _require("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        uri = ctx.tracking_uri
        artifacts = None
        if uri is None:
            ctx.out.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(ctx.out / 'mlflow.db').resolve()}"
            artifacts = (ctx.out / "mlartifacts").resolve().as_uri()
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            try:
                experiment_id = self.client.create_experiment(self.experiment, artifact_location=artifacts)
            except Exception:  # noqa: BLE001 - another run created it in between
                experiment_id = self.client.get_experiment_by_name(self.experiment).experiment_id
        self.run_id = self._resumed_run(ctx.run_dir / self.RUN_ID_FILE, experiment_id)
        if self.run_id is None:
            run = self.client.create_run(experiment_id, run_name=f"{ctx.run_name}/seed-{ctx.seed}",
                                         tags={"kdzoo.run_dir": str(ctx.run_dir.resolve()), "kdzoo.seed": str(ctx.seed)})
            self.run_id = run.info.run_id
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            write_text(ctx.run_dir / self.RUN_ID_FILE, self.run_id + "\n")
        self._pending: list[Any] = []

    def _resumed_run(self, id_file: Path, experiment_id: str) -> str | None:
        """The MLflow run this seed opened before it was interrupted: a resumed seed continues it."""
        try:
            run_id = id_file.read_text().strip()
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - no file, or a run this store does not hold: open a new one
            return None
        if run.info.experiment_id != experiment_id:
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def start(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if any(k.startswith("val/") for k in metrics) or len(self._pending) >= 900:
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path="student")

    def finish(self, status: str) -> None:
        self._flush()
        self.client.set_terminated(self.run_id, status="FINISHED" if status == "ok" else "FAILED")


BUILTIN_LOGGERS = {
    "tensorboard": (TensorBoardLogger, "tensorboard", "TensorBoard event files under RUN/seed-S/tensorboard"),
    "mlflow": (MLflowLogger, "mlflow", "MLflow run per seed (sqlite:///OUT/mlflow.db, or runtime.tracking_uri)"),
}

__all__ = ["BUILTIN_LOGGERS", "LoggerContext", "MLflowLogger", "RunLogger", "TensorBoardLogger", "check_logger_names",
           "flat_params", "open_loggers"]
