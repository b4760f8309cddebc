"""Experiment trackers: the register_loggers hook, TensorBoard event files and MLflow runs of a real distill."""

from __future__ import annotations

import json
import types

import pytest
import torch

import kdzoo
import kdzoo.plugin
from kdzoo.config import DataConfig, ModelConfig
from kdzoo.data import channel_stats, load_dataset, make_splits
from kdzoo.models.wrapper import create_model, save_model
from kdzoo.zoo.plugins import load_zoo

STEPS = 6


def _teacher_file(tmp_path, zoo):
    """An exported random teacher: no teacher training in these tests."""
    bundle = load_dataset("digits", None, zoo)
    splits = make_splits(bundle, DataConfig(name="digits"))
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(0)
    model = create_model(ModelConfig(name="mlp", kwargs={"hidden": [16]}), num_classes=10, data_shape=bundle.sample_shape,
                         data_mean=mean, data_std=std, classes=bundle.classes, task="classification", zoo=zoo)
    path = tmp_path / "teacher.safetensors"
    save_model(model, path)
    return path


def _config(tmp_path, teacher, loggers, **runtime):
    return {"teacher": {"name": "mlp", "checkpoint": str(teacher)}, "student": "linear", "data": "digits",
            "strategy": "kd", "train": {"steps": STEPS, "eval_every": 3}, "out": str(tmp_path / "runs"), "name": "tracked",
            "runtime": {"progress": False, "loggers": loggers, **runtime}}


def _terms(run_dir):
    record = json.loads((run_dir / "seed-0" / "metrics.jsonl").read_text().splitlines()[-1])
    return {k for k in record if k.startswith(("train/", "val/"))}


def test_hook_register_loggers_plugin_logger_gets_every_step_the_config_and_the_export(tmp_path):
    calls = []

    class Recorder:
        def __init__(self, ctx):
            calls.append(("init", ctx.seed, ctx.run_dir.name))

        def start(self, params):
            calls.append(("start", params))

        def log(self, metrics, step):
            calls.append(("log", step, dict(metrics)))

        def artifact(self, path):
            calls.append(("artifact", path.name))

        def finish(self, status):
            calls.append(("finish", status))

    plugin = types.ModuleType("recorder_plugin")
    plugin.register_loggers = kdzoo.plugin.hookimpl(lambda register: register("recorder", Recorder))
    zoo = load_zoo()
    assert zoo.add_plugin(plugin, "recorder", "recorder-dist")
    assert zoo.collect().loggers["recorder"].distribution == "recorder-dist"
    result = kdzoo.distill(_config(tmp_path, _teacher_file(tmp_path, zoo), ["recorder"]), zoo=zoo, log=lambda *a: None)

    assert calls[0] == ("init", 0, "seed-0")
    params = calls[1][1]
    assert params["strategy.0.name" if "strategy.0.name" in params else "strategy"] and params["train.steps"] == STEPS
    assert params["runtime.loggers"] == '["recorder"]' and params["seed"] == 0
    logged = [c for c in calls if c[0] == "log"]
    steps = sorted({c[1] for c in logged})
    assert steps == list(range(1, STEPS + 1))
    every_step = [c[2] for c in logged if "train/loss" in c[2]]
    assert len(every_step) == STEPS and all({"train/kd", "train/label", "lr", "train/samples_per_s"} <= set(m)
                                            for m in every_step)
    evaluations = [c for c in logged if any(k.startswith("val/") for k in c[2])]
    assert [c[1] for c in evaluations] == [3, 6]
    record = json.loads((result.run_dir / "seed-0" / "metrics.jsonl").read_text().splitlines()[-1])
    assert evaluations[-1][2]["val/acc"] == record["val/acc"]  # the JSONL is the source of truth
    assert ("artifact", "student.safetensors") in calls and calls[-1] == ("finish", "ok")


def test_unknown_logger_is_one_line_before_the_run_directory_exists(tmp_path):
    zoo = load_zoo()
    with pytest.raises(kdzoo.ConfigError, match=r"unknown logger 'wandb' \(valid: mlflow, tensorboard\)"):
        kdzoo.distill(_config(tmp_path, _teacher_file(tmp_path, zoo), ["wandb"]), zoo=zoo, log=lambda *a: None)
    assert not (tmp_path / "runs" / "tracked").exists()


@pytest.mark.slow
def test_tensorboard_and_mlflow_hold_every_term_params_metrics_and_the_exported_student(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    zoo = load_zoo()
    result = kdzoo.distill(_config(tmp_path, _teacher_file(tmp_path, zoo), ["tensorboard", "mlflow"]), zoo=zoo,
                           log=lambda *a: None)
    terms = _terms(result.run_dir)
    assert {"train/kd", "train/label", "train/loss", "val/acc"} <= terms

    events = EventAccumulator(str(result.run_dir / "seed-0" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert terms | {"lr", "train/samples_per_s", "epoch"} <= scalars
    assert [e.step for e in events.Scalars("train/kd")] == list(range(1, STEPS + 1))

    uri = f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what mlflow.search_runs reads
    runs = mlflow.search_runs(experiment_names=["kdzoo"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.params["optim.lr"] == "0.002" and run.data.params["student.name"] == "linear"
    assert terms | {"lr", "train/samples_per_s"} <= set(run.data.metrics)
    record = json.loads((result.run_dir / "seed-0" / "metrics.jsonl").read_text().splitlines()[-1])
    assert run.data.metrics["val/acc"] == pytest.approx(record["val/acc"])
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run.info.run_id, "train/kd")
    assert [m.step for m in history] == list(range(1, STEPS + 1))
    assert {a.path for a in client.list_artifacts(run.info.run_id, "student")} == {"student/student.safetensors",
                                                                                    "student/student.json"}
    local = client.download_artifacts(run.info.run_id, "student/student.safetensors", str(tmp_path / "dl"))
    assert kdzoo.load_model(local, zoo).meta["name"] == "linear"


def test_a_logger_whose_package_is_missing_fails_before_the_run_directory_exists(tmp_path):
    plugin = types.ModuleType("needs_plugin")
    plugin.register_loggers = kdzoo.plugin.hookimpl(
        lambda register: register("needy", object, requires="kdzoo_no_such_package_xyz"))
    zoo = load_zoo()
    assert zoo.add_plugin(plugin, "needy", "needy-dist")
    with pytest.raises(kdzoo.ConfigError, match=r"'needy' needs the kdzoo_no_such_package_xyz package"):
        kdzoo.distill(_config(tmp_path, _teacher_file(tmp_path, zoo), ["needy"]), zoo=zoo, log=lambda *a: None)
    assert not (tmp_path / "runs" / "tracked").exists()


@pytest.mark.drill
def test_a_resumed_seed_continues_its_mlflow_run(tmp_path, monkeypatch):
    import os
    import signal

    mlflow = pytest.importorskip("mlflow")
    from kdzoo.train.trainer import Trainer

    zoo = load_zoo()
    config = _config(tmp_path, _teacher_file(tmp_path, zoo), ["mlflow"])
    log_step, fired = Trainer._log_step, []

    def stop_after_step_3(self, logged, step, samples_per_s):  # as if SIGTERM came during step 3
        log_step(self, logged, step, samples_per_s)
        if step == 3 and not fired:
            fired.append(step)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "_log_step", stop_after_step_3)
    with pytest.raises(kdzoo.contract.errors.Interrupted):
        kdzoo.distill(config, zoo=zoo, log=lambda *a: None)
    run_dir = tmp_path / "runs" / "tracked"
    first_id = (run_dir / "seed-0" / "mlflow_run_id").read_text().strip()
    kdzoo.distill(resume=run_dir, zoo=zoo, log=lambda *a: None)

    uri = f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runs = mlflow.search_runs(experiment_names=["kdzoo"], output_format="list")
    assert [r.info.run_id for r in runs] == [first_id] and runs[0].info.status == "FINISHED"
    history = mlflow.tracking.MlflowClient(tracking_uri=uri).get_metric_history(first_id, "train/kd")
    assert [m.step for m in history] == list(range(1, STEPS + 1))  # steps 1-3 before, 4-6 after: each once
