"""Reliability: every bad input is one line and exit 2 with nothing written; concurrent runs never
share a directory; a killed run or bench resumes to the same numbers; no temp file outlives a kill."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kdzoo.cli import main
from kdzoo.testing import ForkedRun, alive

BASE = ["distill", "--teacher", "mlp", "--student", "linear", "--data", "digits", "--steps", "2", "--no-progress"]
NO_TEACHER = ["distill", "--student", "linear", "--data", "digits", "--steps", "2", "--no-progress"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its content (folders as entries too)."""
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return out


def assert_one_line_exit_2(code: int, err: str, needle: str) -> None:
    err = err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("kdzoo: error:"), err
    assert "Traceback" not in err and needle in err, err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished two-seed run (no teacher) that the table's inputs can point at."""
    out = tmp_path_factory.mktemp("finished")
    os.environ.setdefault("KDZOO_CACHE", str(out / "cache"))
    assert main(NO_TEACHER + ["--seeds", "0,1", "--out", str(out), "--name", "done"]) == 0
    return out / "done"


def _files(tmp_path: Path, finished: Path) -> dict[str, str]:
    """Bad files the table refers to as {NAME}."""
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "latin1.yaml").write_bytes("student: caf\xe9\n".encode("latin-1"))
    (tmp_path / "cfg-dir").mkdir()
    (tmp_path / "empty-images").mkdir()
    bad = tmp_path / "bad-images"
    for c in ("a", "b"):
        (bad / c).mkdir(parents=True)
        (bad / c / "x.png").write_bytes(b"not a png")
    torn = tmp_path / "torn"
    torn.mkdir()
    full = (finished / "summary.json").read_text()
    (torn / "summary.json").write_text(full[: len(full) // 2])
    torn_metrics = tmp_path / "torn-metrics"
    import shutil

    shutil.copytree(finished, torn_metrics)
    lines = (torn_metrics / "seed-0" / "metrics.jsonl").read_text().splitlines()
    (torn_metrics / "seed-0" / "metrics.jsonl").write_text(lines[0][:10] + "\n" + "\n".join(lines) + "\n")
    (torn_metrics / "seed-0" / "summary.json").unlink()  # seed 0 must be re-run from its log
    return {"FILE": str(tmp_path / "a-file"), "LATIN1": str(tmp_path / "latin1.yaml"), "DIR": str(tmp_path / "cfg-dir"),
            "EMPTY": str(tmp_path / "empty-images"), "BADIMG": str(bad), "TORN": str(torn), "RUN": str(finished),
            "CKPT": str(finished / "seed-0" / "checkpoint.pt"), "TORNMETRICS": str(torn_metrics),
            **_integrity_files(tmp_path, finished)}


ALIAS_BOMB = """a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
student:
  name: linear
  kwargs: {leaves: *g}
data: digits
train: {steps: 2}
runtime: {progress: false}
"""

SUITE = {"tasks": [{"name": "t", "data": {"name": "digits"}, "steps": 2, "pairs": [{"student": {"name": "linear"}}],
                    "strategies": ["ce"]}]}


def _integrity_files(tmp_path: Path, finished: Path) -> dict[str, str]:
    """Inputs that parse but must be refused: ambiguous YAML and suites, shared images, cast weights."""
    import shutil

    import torch
    from PIL import Image
    from safetensors.torch import load_file, save_file

    files = {}
    (tmp_path / "dup.yaml").write_text("student: linear\ndata: digits\nstudent: mlp\n")
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    files.update(DUPKEYS=str(tmp_path / "dup.yaml"), BOMB=str(tmp_path / "bomb.yaml"))
    suites = {"SUITE_SEED": {**SUITE, "seed": [0, 1]}, "SUITE_DUPSEEDS": {**SUITE, "seeds": [0, 0, 1]},
              "SUITE_STRSTRAT": {"tasks": [{**SUITE["tasks"][0], "strategies": "kd"}]},
              "SUITE_NOSTUDENT": {"tasks": [{**SUITE["tasks"][0], "pairs": [{"teacher": {"name": "mlp"}}]}]}}
    for key, suite in suites.items():
        (tmp_path / f"{key}.yaml").write_text(yaml.safe_dump(suite))
        files[key] = str(tmp_path / f"{key}.yaml")
    files["BENCHOUT"] = str(tmp_path / "bench-out")
    torn = tmp_path / "torn-bench"
    torn.mkdir()
    (torn / "results.json").write_text('{"rows": [{"task": "t", "pai')
    regression = tmp_path / "regression-run"
    regression.mkdir()
    summary = json.loads((finished / "summary.json").read_text())
    for seed in summary["seeds"].values():
        seed["test_best"] = {"mse": 1.0}
    (regression / "summary.json").write_text(json.dumps({**summary, "metric": "mse"}))
    files.update(TORNBENCH=str(torn), REGRUN=str(regression))

    def image(path: Path, value: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), value).save(path)

    image(tmp_path / "one-class" / "a" / "0.png", 10)
    image(tmp_path / "one-class" / "a" / "1.png", 20)
    for c, v in (("a", 10), ("b", 200)):
        image(tmp_path / "two-classes" / c / "0.png", v)
        for split in ("train", "test"):
            image(tmp_path / "train-test" / split / c / "0.png", v)
    (tmp_path / "two-classes" / "b" / "same.png").symlink_to(tmp_path / "two-classes" / "a" / "0.png")
    shutil.rmtree(tmp_path / "train-test" / "test" / "a")
    (tmp_path / "train-test" / "test" / "a").symlink_to(tmp_path / "train-test" / "train" / "a")
    files.update(ONECLASS=str(tmp_path / "one-class"), TWOCLASSES=str(tmp_path / "two-classes"),
                 TRAINTEST=str(tmp_path / "train-test"))
    weights = load_file(str(finished / "seed-0" / "student.safetensors"))
    for key, dtype in (("INTW", torch.int32), ("COMPLEXW", torch.complex64)):
        save_file({k: v.to(dtype) for k, v in weights.items()}, str(tmp_path / f"{key}.safetensors"))
        files[key] = str(tmp_path / f"{key}.safetensors")
    return files


# (argv, needle): {NAME} is replaced by a path from _files; --out OUT is added to distill runs.
BAD_INPUTS = [
    (BASE + ["--strategy", "kd", "--set", "strategy.kd.temperature=.nan"], "strategy.kd.temperature must be a finite"),
    (BASE + ["--strategy", "kd", "--set", "strategy.kd.temperature=.inf"], "must be a finite number"),
    (BASE + ["--epochs", "nan"], "must be a finite number"),
    (NO_TEACHER + ["--set", "optim.grad_clip=-1"], "optim.grad_clip must be > 0, got -1"),
    (NO_TEACHER + ["--set", "optim.accumulate=0"], "optim.accumulate must be >= 1, got 0"),
    (NO_TEACHER + ["--set", "train.seeds=[]"], "train.seeds is empty"),
    (NO_TEACHER + ["--seeds", "0,0"], "train.seeds repeats 0"),
    (NO_TEACHER + ["--labels-per-class", "0"], "data.labels_per_class must be >= 1, got 0"),
    (NO_TEACHER + ["--labels-per-class", "-3"], "data.labels_per_class must be >= 1, got -3"),
    (NO_TEACHER + ["--labels-per-class", "1000"], "but class 0 has only"),
    (NO_TEACHER + ["--set", "data.batch_size=0"], "data.batch_size must be >= 1"),
    (NO_TEACHER + ["--set", "data.batch_size=-8"], "data.batch_size must be >= 1"),
    (NO_TEACHER + ["--threads", "-1"], "runtime.threads must be in [1, 4096], got -1"),
    (NO_TEACHER + ["--set", "data.val_fraction=0.5", "--set", "data.test_fraction=0.5"],
     "data.val_fraction + data.test_fraction must be < 1"),
    (NO_TEACHER + ["--set", "train.ema=1.5"], "train.ema must be in [0, 1), got 1.5"),
    (NO_TEACHER + ["--set", "optim.lr=-1"], "optim.lr must be > 0, got -1"),
    (NO_TEACHER + ["--steps", "0"], "train.steps must be >= 1"),
    (NO_TEACHER + ["--set", "label_weight=-1"], "label_weight must be >= 0"),
    (BASE + ["--strategy", "kd", "--set", "teacher_train.epochs=-2"], "teacher_train.epochs must be > 0"),
    (NO_TEACHER + ["--name", "../../escape"], "must be a plain folder name"),
    (NO_TEACHER + ["--name", "/abs/path"], "must be a plain folder name"),
    (NO_TEACHER + ["--student", "resnet18x"], "unknown student model 'resnet18x'; did you mean 'resnet18'"),
    (BASE + ["--teacher", "resnet5O", "--strategy", "kd"], "unknown teacher model 'resnet5O'; did you mean"),
    (["distill", "--student", "linear", "--data", "imagefolder:{EMPTY}", "--steps", "2"], "holds no class folders"),
    (["distill", "--student", "linear", "--data", "imagefolder:{BADIMG}", "--steps", "2"], "cannot read image"),
    (["distill", "-c", "{LATIN1}"], "is not UTF-8 text"),
    (["distill", "-c", "{DIR}"], "is a directory"),
    (NO_TEACHER + ["--set", "student=!!python/object/apply:os.system [echo pwned]"], "not plain YAML data"),
    (["distill", "--resume", "{CKPT}"], "not a kdzoo run directory"),
    (["distill", "--resume", "{TORNMETRICS}"], "line 1 is not JSON (damaged metrics log)"),
    (["compare", "{TORN}", "{RUN}"], "is damaged (not JSON)"),
    (["compare", "{RUN}", "{FILE}"], "has no summary.json"),
    (["distill", "--epochs", "x"], "argument --epochs: invalid float value: 'x'"),
    # integrity (issue 27): ambiguous or damaged input that used to be accepted, and "internal errors"
    (["distill", "-c", "{DUPKEYS}"], "line 3: key 'student' appears twice in one mapping (first on line 1)"),
    (["distill", "-c", "{BOMB}"], "an alias bomb"),
    (NO_TEACHER + ["--seeds", ""], "train.seeds is empty"),
    (NO_TEACHER + ["--seeds", str(2**64)], "train.seeds[0] must be in [0, 4294967295]"),
    (NO_TEACHER + ["--threads", "99999999999"], "runtime.threads must be in [1, 4096]"),
    (NO_TEACHER + ["--name", "x" * 300], "a run name may have at most 200"),
    (NO_TEACHER + ["--name", "run\nname"], "holds a control character"),
    (BASE + ["--strategy", "kd", "--set", "strategy.kdd.x=1"], "did you mean 'kd'? e.g. strategy.kd.x=1"),
    (BASE + ["--strategy", "kd+dkd", "--set", "strategy.kdd.x=1"], "did you mean 'kd'? e.g. strategy.kd.x=1"),
    (BASE + ["--strategy", "kd+dkd", "--set", "strategy.zz.temperature=2"],
     "no member 'zz' (kd, dkd); name one, e.g. strategy.dkd.temperature=2"),
    (NO_TEACHER + ["--set", "student.checkpoint={INTW}"], "is int32 where the model holds floating-point"),
    (NO_TEACHER + ["--set", "student.checkpoint={COMPLEXW}"], "is complex64 where the model holds floating-point"),
    (["distill", "--student", "linear", "--data", "imagefolder:{ONECLASS}", "--steps", "2"],
     "classification needs at least 2"),
    (["distill", "--student", "linear", "--data", "imagefolder:{TWOCLASSES}", "--steps", "2"],
     "a sample must have one class"),
    (["distill", "--student", "linear", "--data", "imagefolder:{TRAINTEST}", "--steps", "2"], "not both"),
    (["compare", "{RUN}", "{REGRUN}"], "the runs measure different things"),
    (["report", "{TORNBENCH}", "--no-open"], "is damaged (not JSON)"),
    (["bench", "--suite", "{SUITE_SEED}", "--out", "{BENCHOUT}"], "did you mean 'seeds'"),
    (["bench", "--suite", "{SUITE_DUPSEEDS}", "--out", "{BENCHOUT}"], "seeds repeats 0"),
    (["bench", "--suite", "{SUITE_STRSTRAT}", "--out", "{BENCHOUT}"], "'strategies' must be a non-empty list, e.g. strategies: [kd]"),
    (["bench", "--suite", "{SUITE_NOSTUDENT}", "--out", "{BENCHOUT}"], "pair 0 has no student"),
]


@pytest.mark.parametrize("argv, needle", BAD_INPUTS, ids=[" ".join(a[len(BASE) if a[:2] == BASE[:2] else 0:])[:60]
                                                          for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_changes(tmp_path, capsys, finished_run, argv, needle):
    files = _files(tmp_path, finished_run)
    argv = [a.format(**files) if "{" in a and "!!" not in a else a for a in argv]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    if argv[0] == "distill" and "--resume" not in argv:
        argv += ["--out", str(out)]
    before_out, before_run = snapshot(out), snapshot(finished_run)
    before_torn = snapshot(Path(files["TORNMETRICS"]))
    rows_before = _index_rows()
    assert_one_line_exit_2(main(argv), capsys.readouterr().err, needle)
    assert _index_rows() == rows_before  # no "failed" row for an input error
    assert snapshot(out) == before_out and snapshot(finished_run) == before_run
    assert snapshot(Path(files["TORNMETRICS"])) == before_torn  # a refused resume leaves the run as it was
    assert not Path(files["BENCHOUT"]).exists()


def _index_rows() -> int:
    import sqlite3

    index = Path(os.environ["KDZOO_INDEX"])
    if not index.exists():
        return 0
    with sqlite3.connect(index) as con:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_out_or_cache_naming_a_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "f").write_text("x")
    assert_one_line_exit_2(main(NO_TEACHER + ["--out", str(tmp_path / "f")]), capsys.readouterr().err, "is a file, not a folder")
    assert_one_line_exit_2(main(NO_TEACHER + ["--out", str(tmp_path / "f" / "sub")]), capsys.readouterr().err,
                           "is a file, not a folder")
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "f"))
    assert_one_line_exit_2(main(NO_TEACHER + ["--out", str(tmp_path / "o")]), capsys.readouterr().err,
                           "KDZOO_CACHE")
    assert not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "taken").write_text("x")  # --name naming a file inside --out
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    assert_one_line_exit_2(main(NO_TEACHER + ["--out", str(tmp_path / "o"), "--name", "taken"]),
                           capsys.readouterr().err, "already exists")
    assert (tmp_path / "o" / "taken").read_text() == "x"


def test_nonfinite_loss_stops_with_one_line_and_marks_the_run_failed(tmp_path, capsys):
    argv = NO_TEACHER + ["--steps", "4", "--set", "optim.lr=1e30", "--out", str(tmp_path), "--name", "nan"]
    assert_one_line_exit_2(main(argv), capsys.readouterr().err, "loss term 'label' is nan (strategy ce)")
    status = json.loads((tmp_path / "nan" / "status.json").read_text())
    assert status["state"] == "failed" and "NonFiniteLoss" in status["error"]
    assert_one_line_exit_2(main(["distill", "--resume", str(tmp_path / "nan")]), capsys.readouterr().err,
                           "cannot be resumed")
    from kdzoo.bench.runindex import query

    rows = [r for r in query("run") if r["path"] == str((tmp_path / "nan").resolve())]
    assert [r["state"] for r in rows] == ["failed"]
    # the flag skips such steps instead, and the run finishes
    assert main(argv[:-1] + ["nan-skip", "--set", "train.nonfinite=skip"]) == 0
    log = [json.loads(x) for x in (tmp_path / "nan-skip" / "seed-0" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("train/skipped", 0) > 0 for r in log)


def test_unexpected_error_points_to_debug_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import kdzoo.train.runs

    def boom(*a, **k):
        raise RuntimeError("something internal\nsecond line")

    monkeypatch.setattr(kdzoo.train.runs, "prepare", boom)
    assert main(NO_TEACHER + ["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("kdzoo: internal error: RuntimeError: something internal second line "
                   "(unexpected; rerun with --debug for the traceback)")
    with pytest.raises(RuntimeError):
        main(NO_TEACHER + ["--out", str(tmp_path), "--debug"])


def _kdzoo(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdzoo", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_real_subprocesses_one_line_exit_2(tmp_path):
    cases = [(NO_TEACHER + ["--set", "train.ema=1.5", "--out", str(tmp_path)], "train.ema must be in [0, 1)"),
             (["distill", "--resume", str(tmp_path / "nope")], "not a kdzoo run directory"),
             (["bench", "--suite", "nope"], "unknown suite 'nope'")]
    procs = [(_kdzoo(*argv), needle) for argv, needle in cases]
    for proc, needle in procs:
        out, err = proc.communicate(timeout=120)
        assert_one_line_exit_2(proc.returncode, err, needle)
    assert list(tmp_path.iterdir()) == []


def _forked(argv: list[str], env: dict[str, str]) -> int:
    """``main(argv)`` in a forked child (torch is already imported: no start-up cost)."""
    os.environ.update(env)
    return main(argv)


def _run_forked(argvs: list[list[str]], env: dict[str, str], timeout: float = 300) -> list[int]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    with ctx.Pool(len(argvs)) as pool:
        results = [pool.apply_async(_forked, (argv, env)) for argv in argvs]
        return [r.get(timeout) for r in results]


@pytest.mark.slow
def test_four_concurrent_runs_without_name_get_four_directories(tmp_path):
    index = tmp_path / "index.sqlite"
    argv = NO_TEACHER + ["--threads", "1", "--out", str(tmp_path / "runs")]
    assert _run_forked([argv] * 4, {"KDZOO_INDEX": str(index)}) == [0, 0, 0, 0]
    dirs = sorted((tmp_path / "runs").iterdir())
    assert len(dirs) == 4
    for d in dirs:
        summary = json.loads((d / "summary.json").read_text())
        assert list(summary["seeds"]) == ["0"]
        assert json.loads((d / "status.json").read_text())["state"] == "done"
    import sqlite3

    rows = sqlite3.connect(index).execute("SELECT path, state FROM runs WHERE kind = 'run'").fetchall()
    assert sorted(rows) == sorted((str(d.resolve()), "done") for d in dirs)


def test_resume_sweeps_temp_files_left_by_a_killed_writer(tmp_path, capsys):
    argv = NO_TEACHER + ["--steps", "6", "--set", "train.checkpoint_every=2", "--out", str(tmp_path), "--name", "r"]
    assert main(argv) == 0
    seed = tmp_path / "r" / "seed-0"
    # what a writer killed inside torch.save leaves: a temp sibling named after its (now dead) pid
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = seed / f".checkpoint.pt.tmp{dead.stdout.strip()}"
    leftover.write_bytes(b"\0" * 1024)
    (seed / "summary.json").unlink()  # the seed looks interrupted
    (tmp_path / "r" / "status.json").write_text(json.dumps({"state": "interrupted"}))
    assert main(["distill", "--resume", str(tmp_path / "r")]) == 0
    assert not leftover.exists()
    assert not list((tmp_path / "r").rglob(".*.tmp*"))


def test_canonical_numbers_give_one_teacher_key():
    from kdzoo.config import make_config
    from kdzoo.train.teacher import teacher_key

    base = {"teacher": "mlp", "data": "digits"}
    keys = {teacher_key(make_config(dict(base, teacher_train=tt))) for tt in ({}, {"epochs": 15}, {"epochs": 15.0})}
    assert len(keys) == 1
    assert teacher_key(make_config(dict(base, teacher_train={"epochs": 16}))) not in keys


def test_concurrent_teacher_requests_train_it_once(tmp_path, capfd):
    """Two processes that need the same uncached teacher: one trains it, the other waits and loads it."""
    cache = tmp_path / "cache"
    argv = BASE + ["--strategy", "kd", "--set", "teacher_train.epochs=3", "--threads", "1", "--out", str(tmp_path / "r")]
    assert _run_forked([argv, argv], {"KDZOO_CACHE": str(cache)}) == [0, 0]
    out = capfd.readouterr().out
    assert out.count("training on the full train split") == 1, out
    teachers = list((cache / "teachers").glob("*/metrics.jsonl"))
    assert len(teachers) == 1
    steps = [json.loads(x)["step"] for x in teachers[0].read_text().splitlines()]
    assert steps == sorted(set(steps))  # one writer: no line twice


BENCH = {
    "name": "killable",
    "seeds": [0],
    "tasks": [{
        "name": "digits",
        "data": {"name": "digits"},
        "steps": 1500,  # long enough that a cell outlives the kill plus the workers' 0.5 s parent watchdog
        "train": {"checkpoint_every": 10},
        "optim": {"lr": 0.01},
        "teacher_train": {"epochs": 2},
        "pairs": [{"teacher": {"name": "mlp", "kwargs": {"hidden": [32]}},
                   "student": {"name": "mlp", "kwargs": {"hidden": [64, 64]}}}],
        "strategies": ["ce", "kd"],
    }],
}
METRIC_COLUMNS = ("test_best_acc", "test_last_acc", "val_best_acc", "test_best_nll", "steps")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


@pytest.mark.drill
@pytest.mark.slow
def test_bench_killed_mid_cell_resumes_to_the_uninterrupted_numbers(tmp_path):
    """SIGKILL to the bench parent only, with --jobs 2: its workers notice and exit; the re-run
    resumes the interrupted cells and ends with the same metric columns as an uninterrupted bench."""
    from kdzoo.bench.suite import run_bench

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(BENCH))
    env = {"KDZOO_CACHE": os.environ["KDZOO_CACHE"], "KDZOO_INDEX": os.environ["KDZOO_INDEX"]}
    killed = tmp_path / "killed"
    # the bench parent forked from this process (no start-up of its own); its workers are spawned afresh
    proc = ForkedRun(["bench", "--suite", str(suite), "--out", str(killed), "--jobs", "2", "--no-progress"],
                     env={**os.environ, **env})
    deadline = time.time() + 240
    while time.time() < deadline and not list(killed.glob("cells/*/seed-0/checkpoint.pt")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    workers = [c for c in _children(proc.pid) if c]
    assert workers, "the bench started no worker processes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(alive(w) for w in workers), "workers outlived their bench"
    assert len(list((killed / "cells").glob("*/seed-0/summary.json"))) < 2  # killed mid-cell
    resumed = run_bench(str(suite), killed, jobs=1, progress=False, log=lambda *a: None)
    straight = run_bench(str(suite), tmp_path / "straight", jobs=1, progress=False, log=lambda *a: None)

    def table(results):
        return {(r["variant"], r["seed"]): tuple(r.get(c) for c in METRIC_COLUMNS) for r in results["rows"]}

    assert all(r["status"] == "ok" for r in resumed["rows"]), [r["status"] for r in resumed["rows"]]
    assert table(resumed) == table(straight)
    assert not list(killed.rglob("*.claim")) and not list(killed.rglob(".*.tmp*"))


def test_a_failed_cell_makes_the_bench_exit_non_zero_and_is_retried(tmp_path, capsys, monkeypatch):
    import kdzoo.train.runs

    suite = json.loads(json.dumps(BENCH))
    suite["tasks"][0].update(steps=3, strategies=["ce"])
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    real = kdzoo.train.runs.run_seed

    def fails(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(kdzoo.train.runs, "run_seed", fails)
    assert main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 bench cell(s) failed" in err and "RuntimeError: disk on fire" in err
    monkeypatch.setattr(kdzoo.train.runs, "run_seed", real)
    assert main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
