"""Executors without a cluster: the hook, the generic interface on local processes, resources, errors.

The real Slurm and Ray runs are in tests/cluster (``pytest -m cluster tests/cluster``).
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest
import yaml

import kdzoo
import kdzoo.plugin
from kdzoo.bench.executors import Executor, Handle, Resources, Task, TaskState, make_executor, with_builtin_executors
from kdzoo.bench.executors.cell import StaleCell, attempts, run_cell_task
from kdzoo.bench.suite import expand_all, run_bench
from kdzoo.cli import main
from kdzoo.config import to_dict
from kdzoo.contract.errors import ConfigError
from kdzoo.zoo.plugins import Zoo, load_zoo
from test_docs import doc_example, zoo_with

SUITE = {
    "name": "tiny-exec", "seeds": [0],
    "tasks": [{
        "name": "digits", "data": {"name": "digits", "labels_per_class": 10}, "steps": 4,
        "teacher_train": {"epochs": 1},
        "pairs": [{"teacher": {"name": "mlp", "kwargs": {"hidden": [16]}}, "student": {"name": "linear"}}],
        "strategies": ["ce"],
        "resources": {"cpus": 1, "mem": "500M"},
    }],
}


class Inline(Executor):
    """A plugin's executor: runs each task at once, in this process."""

    name = "inline"

    def __init__(self, options):
        self.options, self.results = options, {}

    def submit(self, tasks):
        for task in tasks:
            self.results[task.key] = task.fn(*task.args)
        return [Handle(task.key, self.name, task.key) for task in tasks]

    def poll(self, handles):
        return {h.key: TaskState("done", self.results[h.key]) for h in handles}

    def cancel(self, handles):
        pass


def test_an_executor_without_submit_poll_and_cancel_cannot_be_made():
    class Incomplete(Executor):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_hook_register_executors_adds_executors_beside_the_builtin_ones():
    class Plugin:
        @kdzoo.plugin.hookimpl
        def register_executors(self, register):
            register("inline", Inline, description="runs tasks at once")

    zoo = Zoo()
    from kdzoo.zoo import builtin

    zoo.add_plugin(builtin, "kdzoo")
    zoo.add_plugin(Plugin(), "inline-plugin")
    assert set(zoo.collect().executors) == {"inline"}  # kdzoo's own are the bench's: it adds them when it looks one up
    assert {"local", "slurm", "ray", "inline"} <= set(with_builtin_executors(zoo).collect().executors)
    assert {zoo.executors[n].plugin for n in ("local", "slurm", "ray")} == {"kdzoo"}
    assert zoo.executors["slurm"].meta["requires"] == "submitit"
    made = make_executor("inline", {"address": "x"}, zoo)
    assert isinstance(made, Inline) and made.options == {"address": "x"}
    with pytest.raises(ConfigError, match="unknown executor 'slrum'; did you mean 'slurm'"):
        make_executor("slrum", {}, zoo)


def test_hook_register_executors_the_documented_example_runs_a_bench(tmp_path):
    zoo = with_builtin_executors(zoo_with(doc_example("register_executors")))
    assert set(zoo.collect().executors) >= {"local", "slurm", "ray", "inline"}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    results = run_bench(str(path), tmp_path / "b", zoo=zoo, executor="inline", progress=False, log=lambda *a: None)
    assert [r["status"] for r in results["rows"] if r.get("seed") is not None] == ["ok"]
    [cell] = expand_all(SUITE, zoo, tmp_path / "b")[0]
    assert [a["executor"] for a in attempts(to_dict(cell.config))] == ["inline"]


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("submitit", "ray") else real(name, *a))
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    for name in ("slurm", "ray"):
        code = main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--executor", name])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"pip install 'kdzoo[{name}]'" in err
    assert not (tmp_path / "b" / "cells").exists()  # nothing trained or written before the error


def test_local_executor_runs_each_task_in_a_fresh_process(tmp_path):
    executor = make_executor("local", {"jobs": 1}, load_zoo())
    try:
        tasks = [Task(f"t{i}", f"task {i}", os.getpid, (), Resources(), tmp_path) for i in range(2)]
        tasks.append(Task("bad", "bad", os.stat, (str(tmp_path / "absent"),), Resources(), tmp_path))
        handles = executor.submit(tasks)
        states = {}
        while len(states) < 3:
            states.update({k: s for k, s in executor.poll(handles).items() if s.state in ("done", "failed")})
    finally:
        executor.close()
    assert states["t0"].state == states["t1"].state == "done"
    assert len({states["t0"].result, states["t1"].result, os.getpid()}) == 3
    assert states["bad"].state == "failed" and "FileNotFoundError" in states["bad"].error


def test_resources_come_from_the_suite_and_the_command_line():
    task = Resources.from_dict({"cpus": 2, "mem": 800, "sbatch": "--qos=low"})
    merged = task.merged({"gpus": 2, "time": 30, "sbatch": ["--exclusive"], "cpus": None})
    assert (merged.cpus, merged.gpus, merged.mem, merged.time) == (2, 2, "800", 30)
    assert merged.sbatch == ["--qos=low", "--exclusive"] and merged.processes == 2
    with pytest.raises(ConfigError, match="unknown key in resources 'gpu'; did you mean 'gpus'"):
        Resources.from_dict({"gpu": 1})
    with pytest.raises(ConfigError, match="resources.cpus must be a whole number >= 1, got 0"):
        Resources.from_dict({"cpus": 0})
    cells, _ = expand_all(SUITE, load_zoo(), Path("/tmp/x"))
    assert cells[0].resources == {"cpus": 1, "mem": "500M"}  # the task's resources travel with its cells


def test_slurm_flags_become_submitit_parameters():
    if importlib.util.find_spec("submitit") is None:
        pytest.skip("submitit is not installed (pip install 'kdzoo[slurm]')")
    from kdzoo.bench.executors.slurm import sbatch_flags

    assert sbatch_flags(["--qos=high", "--exclusive", "-C=a100"]) == {"qos": "high", "exclusive": True, "C": "a100"}


def test_a_cell_whose_code_changed_in_the_queue_refuses_to_run(tmp_path):
    cells, _ = expand_all(SUITE, load_zoo(), tmp_path / "b")
    data = to_dict(cells[0].config)
    log = tmp_path / "cell.log"
    with pytest.raises(StaleCell, match=f"cell 0000000000000000: the code changed while it waited .its key is now "
                                        f"{cells[0].key}"):
        run_cell_task(data, "0" * 16, "local", str(log))
    assert not (tmp_path / "b" / "cells" / cells[0].key).exists()  # nothing ran under the old key
    assert attempts(data)[0]["executor"] == "local" and "StaleCell" in log.read_text()


def test_status_lists_cells_and_executor_options_are_checked(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(dict(SUITE, executor="local")))
    assert main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--status"]) == 0
    out = capsys.readouterr().out
    assert "[to run]" in out and "1 to run" in out
    path.write_text(yaml.safe_dump(dict(SUITE, executor_options={"adress": "auto"})))
    assert main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--status"]) == 2
    assert "unknown key in executor_options 'adress'; did you mean 'address'" in capsys.readouterr().err
    path.write_text(yaml.safe_dump(SUITE))
    code = main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--detach"])
    assert code == 2 and "--detach: the local executor runs cells inside this command" in capsys.readouterr().err
