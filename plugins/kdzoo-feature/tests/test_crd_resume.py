"""CRD end to end: the memory banks across kill -9 and resume, and under 2-process DDP (gloo, CPU).

Each run goes through ``crd_spy.py`` (the kdzoo CLI that saves each rank's CRD state at exit).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.drill]
SPY = str(Path(__file__).with_name("crd_spy.py"))
COMMON = ["--teacher", "mlp", "--student", "mlp", "--strategy", "crd", "--data", "digits", "--threads", "1",
          "--no-progress", "--set", "teacher.kwargs.hidden=[64]", "--set", "student.kwargs.hidden=[32]",
          "--set", "teacher_train.epochs=3", "--set", "strategy.crd.negatives=256", "--labels-per-class", "20",
          "--set", "train.eval_every=20", "--set", "train.checkpoint_every=10", "--steps", "300"]


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, KDZOO_CACHE=str(tmp_path / "cache"), OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "kdzoo", "teacher", "--teacher", "mlp", "--data", "digits", "--threads",
                        "1", "--no-progress", "--set", "teacher.kwargs.hidden=[64]", "--set", "teacher_train.epochs=3"],
                       env=e, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return e


def spy_env(env, tmp_path, name):
    out = tmp_path / f"spy-{name}"
    out.mkdir()
    return dict(env, KDZOO_SPY_DIR=str(out)), out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from ``/proc``; torchrun starts each rank in its own session)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
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


def kill_after_checkpoint(proc, run, min_step=40):
    """SIGKILL the launcher and every rank once the run has logged ``min_step`` (checkpoints every 10 steps)."""
    metrics = run / "seed-0" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if metrics.exists() and any(json.loads(line)["step"] >= min_step
                                    for line in metrics.read_text().splitlines() if line):
            ranks = descendants(proc.pid)
            for pid in [proc.pid, *ranks]:
                os.kill(pid, signal.SIGKILL)
            code = proc.wait(timeout=60)
            while any(alive(pid) for pid in ranks):  # the run's lock names a rank: wait for it to be gone
                time.sleep(0.05)
            return code
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
        time.sleep(0.02)
    pytest.fail("no checkpoint appeared")


def final(run):
    s = json.loads((run / "seed-0" / "summary.json").read_text())
    return {k: s[k] for k in ("steps", "best_step", "val_best", "test_best", "test_last")}


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("ddp", [False, True], ids=["single", "ddp2"])
def test_memory_bank_after_kill9_and_resume_equals_uninterrupted(tmp_path, env, ddp):
    launch = (lambda *a: torchrun(SPY, *a)) if ddp else (lambda *a: [sys.executable, SPY, *a])
    out = str(tmp_path / "runs")
    e, whole_dir = spy_env(env, tmp_path, "whole")
    p = subprocess.run(launch("distill", *COMMON, "--out", out, "--name", "whole"), env=e, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    e, cut_dir = spy_env(env, tmp_path, "cut")
    proc = subprocess.Popen(launch("distill", *COMMON, "--out", out, "--name", "cut"), env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert kill_after_checkpoint(proc, tmp_path / "runs" / "cut") != 0
    assert not (tmp_path / "runs" / "cut" / "seed-0" / "summary.json").exists()
    assert not list(cut_dir.glob("crd-rank*.pt"))  # killed: nothing dumped
    p = subprocess.run(launch("distill", "--resume", str(tmp_path / "runs" / "cut")), env=e, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert final(tmp_path / "runs" / "cut") == final(tmp_path / "runs" / "whole")
    ranks = ["0", "1"] if ddp else ["0"]
    whole = {r: torch.load(whole_dir / f"crd-rank{r}.pt") for r in ranks}
    resumed = {r: torch.load(cut_dir / f"crd-rank{r}.pt") for r in ranks}
    assert int(whole["0"]["draws"]) == 300 and (whole["0"]["z"] > 0).all()
    for r in ranks:
        assert_same_state(resumed[r], whole[r])
    if ddp:  # every rank holds the same banks and Z (gathered updates, averaged Z)
        for key in ("memory_s", "memory_t", "z", "draws"):
            assert torch.equal(whole["0"][key], whole["1"][key]), key
