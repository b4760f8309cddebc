"""A run killed with SIGKILL and resumed ends with the same metrics as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.drill]

ARGS = ["distill", "--teacher", "mlp", "--student", "lenet5", "--strategy", "kd", "--data", "mnist5k",
        "--labels-per-class", "20", "--steps", "240", "--threads", "1", "--no-progress",
        "--set", "teacher_train.epochs=1", "--set", "teacher.kwargs.hidden=[64]", "--set", "train.eval_every=20",
        "--set", "train.checkpoint_every=10", "--set", "train.ema=0.9", "--set", "optim.name=sgd",
        "--set", "optim.lr=0.05", "--set", "data.augment=shift"]


def kdzoo(*args, env):
    return subprocess.Popen([sys.executable, "-m", "kdzoo", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, KDZOO_CACHE=str(tmp_path / "cache"), OMP_WAIT_POLICY="PASSIVE")
    # train the teacher once so both runs share it
    p = kdzoo("teacher", "--teacher", "mlp", "--data", "mnist5k", "--set", "teacher.kwargs.hidden=[64]",
              "--set", "teacher_train.epochs=1", "--threads", "1", "--no-progress", env=e)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    return e


def interrupt_when_checkpointed(proc, run, sig, min_step=30):
    ckpt = run / "seed-0" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists() and any(json.loads(l)["step"] >= min_step for l in ckpt.read_text().splitlines() if l):
            proc.send_signal(sig)
            return proc.wait(timeout=120)
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("no checkpoint appeared")


def finished(run):
    summary = json.loads((run / "seed-0" / "summary.json").read_text())
    for key in ("cpu_seconds", "wall_seconds", "train_seconds", "train_cpu_seconds"):  # timings differ
        summary.pop(key)
    return summary, (run / "seed-0" / "metrics.jsonl").read_text()


@pytest.mark.parametrize("sig, expected_code", [(signal.SIGKILL, -9), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, env, sig, expected_code):
    whole, broken = tmp_path / "runs" / "whole", tmp_path / "runs" / "broken"
    p = kdzoo(*ARGS, "--out", str(tmp_path / "runs"), "--name", "whole", env=env)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    p = kdzoo(*ARGS, "--out", str(tmp_path / "runs"), "--name", "broken", env=env)
    assert interrupt_when_checkpointed(p, broken, sig) == expected_code
    assert not (broken / "seed-0" / "summary.json").exists()
    if sig == signal.SIGTERM:
        assert "checkpoint saved" in p.stderr.read()
    p = kdzoo("distill", "--resume", str(broken), env=env)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    assert finished(broken) == finished(whole)
