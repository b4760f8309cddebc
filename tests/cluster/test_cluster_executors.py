"""One bench, whatever runs it: a tiny suite through local, slurm and ray, and the kill/requeue drills.

Every table must equal ``local``'s (same seeds, one thread per cell), every cell must record a
Slurm job id or a Ray node other than the driver's (submitit and Ray both fall back to local
execution silently), and a cell stopped mid-run must continue from its checkpoint to the
uninterrupted numbers.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from kdzoo.bench.executors.cell import attempts, checkpoint_steps
from kdzoo.bench.suite import expand_all, run_bench
from kdzoo.cli import main
from kdzoo.config import to_dict
from kdzoo.zoo.plugins import load_zoo

pytestmark = pytest.mark.cluster

PAIR = {"teacher": {"name": "mlp", "kwargs": {"hidden": [64]}}, "student": {"name": "mlp", "kwargs": {"hidden": [8]}}}
SUITE = {"name": "tiny-cluster", "seeds": [0], "tasks": [{
    "name": "digits", "data": {"name": "digits", "labels_per_class": 10}, "steps": 12, "optim": {"lr": 0.01},
    "teacher_train": {"epochs": 3}, "pairs": [PAIR], "strategies": ["ce", "kd"]}]}
# a kd cell long enough to stop mid-run: a checkpoint every 40 steps, a few seconds of training
DRILL = {"name": "drill", "seeds": [0], "tasks": [{
    "name": "digits", "data": {"name": "digits", "labels_per_class": 10}, "steps": 800, "optim": {"lr": 0.01},
    "train": {"eval_every": 40}, "teacher_train": {"epochs": 3},
    "pairs": [dict(PAIR, student={"name": "mlp", "kwargs": {"hidden": [128, 128]}})], "strategies": ["kd"]}]}
QUIET = {"progress": False, "log": lambda *a: None}


def numbers(results):
    return {(r["variant"], r["seed"]): (r["test_best_acc"], r["test_last_acc"], r["val_best_acc"], r["steps"])
            for r in results["rows"] if r.get("seed") is not None}


def write(tmp_path, suite):
    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def cells_of(path, out):
    return expand_all(yaml.safe_load(open(path)), load_zoo(), Path(out))[0]


def squeue():
    done = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, check=True)
    return dict(line.split()[:2] for line in done.stdout.splitlines())


def wait_until(predicate, timeout=120.0, what="the condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def local(cluster_env, tmp_path_factory):
    """The same suites on the local executor: the numbers every other executor must give."""
    tmp = tmp_path_factory.mktemp("local")
    return {name: numbers(run_bench(write(tmp, suite), tmp / name, **QUIET))
            for name, suite in (("tiny", SUITE), ("drill", DRILL))}


def test_slurm_detached_then_collected_gives_local_numbers_and_records_its_jobs(slurm, local, tmp_path, capsys):
    path, out = write(tmp_path, SUITE), tmp_path / "b"
    assert main(["bench", "--suite", path, "--out", str(out), "--executor", "slurm", "--detach", "--sbatch=--hold",
                 "--no-progress"]) == 0
    records = json.loads((out / "executor-jobs.json").read_text())
    ids = sorted(r["id"] for r in records.values())
    assert len(ids) == 2 and all(squeue()[i] == "PENDING" for i in ids)
    capsys.readouterr()
    assert main(["bench", "--suite", path, "--out", str(out), "--executor", "slurm", "--status"]) == 0
    status = capsys.readouterr().out
    assert all(f"[queued (slurm job {i})]" in status for i in ids), status
    subprocess.run(["scontrol", "release", *ids], check=True)
    logs = []
    results = run_bench(path, out, executor="slurm", progress=False, log=logs.append)
    assert any("2 cells already submitted to slurm by an earlier command" in line for line in logs)
    assert numbers(results) == local["tiny"]
    for cell in cells_of(path, out):  # each cell ran in the job the bench submitted for it, not in this process
        [attempt] = attempts(to_dict(cell.config))
        assert attempt["slurm_job_id"] == records[cell.key]["id"] and attempt["pid"] != os.getpid()
    assert not (out / "executor-jobs.json").exists()
    assert main(["bench", "--suite", path, "--out", str(out), "--executor", "slurm", "--status"]) == 0
    assert "2 done" in capsys.readouterr().out


def test_ctrl_c_cancels_the_jobs_this_command_queued(slurm, local, tmp_path):
    path, out = write(tmp_path, SUITE), tmp_path / "b"
    bench = subprocess.Popen([sys.executable, "-m", "kdzoo", "bench", "--suite", path, "--out", str(out),
                              "--executor", "slurm", "--sbatch=--hold", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = wait_until(lambda: (out / "executor-jobs.json").is_file()
                         and json.loads((out / "executor-jobs.json").read_text()), what="the jobs file")
    bench.send_signal(signal.SIGINT)
    _, err = bench.communicate(timeout=60)
    assert bench.returncode == 130 and "2 slurm jobs cancelled" in err
    assert all(squeue().get(r["id"]) in ("CANCELLED", None) for r in records.values())
    assert not (out / "executor-jobs.json").exists()


def _run_then(action, path, out):
    """Submit the drill cell detached, wait for its first checkpoint, do ``action(job_id)``; returns the job id."""
    run_bench(path, out, executor="slurm", detach=True, **QUIET)
    cell = next(c for c in cells_of(path, out) if c.variant == "kd")  # beside it, the ce row every table has
    record = json.loads((out / "executor-jobs.json").read_text())[cell.key]
    wait_until(lambda: checkpoint_steps(to_dict(cell.config)), what="the cell's first checkpoint")
    action(record["id"])
    return record["id"], cell


def test_a_cancelled_slurm_job_continues_from_its_checkpoint(slurm, local, tmp_path):
    path, out = write(tmp_path, DRILL), tmp_path / "b"
    job, cell = _run_then(lambda job: subprocess.run(["scancel", job], check=True), path, out)
    wait_until(lambda: squeue().get(job) in ("CANCELLED", None), what="the job to end")
    results = run_bench(path, out, executor="slurm", **QUIET)  # the same command again: resubmitted, resumed
    first, second = attempts(to_dict(cell.config))
    assert first["slurm_job_id"] == job and second["slurm_job_id"] != job
    assert 0 < second["resume_from"]["seed-0"] < 800  # continued, not restarted
    assert numbers(results) == local["drill"]


def test_a_requeued_slurm_job_continues_rather_than_restarting(slurm, local, tmp_path):
    path, out = write(tmp_path, DRILL), tmp_path / "b"
    job, cell = _run_then(lambda job: subprocess.run(["scontrol", "requeue", job], check=True), path, out)
    # Slurm holds a requeued job for two minutes (its BeginTime); an administrator's StartTime=now skips that
    wait_until(lambda: squeue().get(job) == "PENDING", what="the job to be requeued")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    results = run_bench(path, out, executor="slurm", **QUIET)  # waits for the same job, requeued
    first, second = attempts(to_dict(cell.config))
    assert first["slurm_job_id"] == second["slurm_job_id"] == job
    assert (first["slurm_restart_count"], second["slurm_restart_count"]) == (0, 1)
    assert 0 < second["resume_from"]["seed-0"] < 800
    assert numbers(results) == local["drill"]


def test_ray_runs_the_suite_on_another_node_with_local_numbers(ray_cluster, local, tmp_path):
    import ray

    path, out = write(tmp_path, SUITE), tmp_path / "b"
    results = run_bench(path, out, executor="ray", **QUIET)
    assert numbers(results) == local["tiny"]
    driver = ray.get_runtime_context().get_node_id()
    for cell in cells_of(path, out):
        [attempt] = attempts(to_dict(cell.config))
        assert attempt["ray_node_id"] != driver and attempt["pid"] != os.getpid()


def test_a_killed_ray_task_is_retried_by_ray_and_resumed_by_kdzoo(ray_cluster, local, tmp_path):
    path, out = write(tmp_path, DRILL), tmp_path / "b"
    cell = next(c for c in cells_of(path, out) if c.variant == "kd")
    data = to_dict(cell.config)
    killed = []

    def kill_after_first_checkpoint():
        wait_until(lambda: attempts(data) and checkpoint_steps(data), what="the cell's first checkpoint")
        pid = attempts(data)[0]["pid"]
        os.kill(pid, signal.SIGKILL)  # the Ray worker dies mid-cell, as on a lost node
        killed.append(pid)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    results = run_bench(path, out, executor="ray", **QUIET)
    killer.join(10)
    first, second = attempts(data)
    assert killed == [first["pid"]] and second["pid"] != first["pid"]  # Ray's own retry started it again
    assert 0 < second["resume_from"]["seed-0"] < 800  # and kdzoo's resume continued it
    assert numbers(results) == local["drill"]


def test_a_cell_asking_for_two_processes_runs_ddp_under_torchrun_in_its_job(slurm, tmp_path):
    # procs: 2 on CPU is the path a cell with gpus: 2 takes on a GPU node (gloo here, nccl there)
    suite = dict(SUITE, name="ddp", tasks=[dict(SUITE["tasks"][0], strategies=["ce"],
                                                resources={"procs": 2, "cpus": 2})])
    path, out = write(tmp_path, suite), tmp_path / "b"
    results = run_bench(path, out, executor="slurm", **QUIET)
    assert [r["status"] for r in results["rows"] if r.get("seed") is not None] == ["ok"]
    [cell] = cells_of(path, out)
    summary = json.loads((out / "cells" / cell.key / "summary.json").read_text())
    assert summary["provenance"]["world_size"] == 2
    assert attempts(to_dict(cell.config))[0]["slurm_job_id"]
