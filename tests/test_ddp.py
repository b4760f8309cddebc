"""DDP under torchrun (gloo, 2 CPU processes, tiny models)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
COMMON = ["--teacher", "mlp", "--student", "mlp", "--strategy", "kd", "--data", "digits", "--threads", "1",
          "--no-progress", "--set", "teacher.kwargs.hidden=[64]", "--set", "student.kwargs.hidden=[32]",
          "--set", "teacher_train.epochs=3", "--set", "optim.name=sgd", "--set", "optim.lr=0.1",
          "--set", "data.batch_size=64"]


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, KDZOO_CACHE=str(tmp_path / "cache"), OMP_WAIT_POLICY="PASSIVE", KDZOO_SPY_DIR=str(tmp_path),
             OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "kdzoo", "teacher", *COMMON[:2], *COMMON[8:]], env=e,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return e


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_first_ddp_step_equals_single_process_step_and_rank0_alone_writes(tmp_path, env):
    out = str(tmp_path / "runs")
    single = subprocess.run([sys.executable, "-m", "kdzoo", "distill", *COMMON, "--steps", "1", "--out", out,
                             "--name", "single"], env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(torchrun(str(HERE / "ddp_spy.py"), "distill", *COMMON, "--steps", "1", "--out", out,
                                  "--name", "ddp"), env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr
    a = weights(tmp_path / "runs" / "single" / "seed-0" / "student.safetensors")
    b = weights(tmp_path / "runs" / "ddp" / "seed-0" / "student.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    rank0 = (tmp_path / "writes-rank0.txt").read_text().split()
    rank1 = (tmp_path / "writes-rank1.txt").read_text().split()
    assert any("summary.json" in p for p in rank0) and any("student.safetensors" in p for p in rank0)
    assert rank1 == [], f"rank 1 wrote {rank1}"
    summary = json.loads((tmp_path / "runs" / "ddp" / "summary.json").read_text())
    assert summary["provenance"]["world_size"] == 2


@pytest.mark.drill
def test_sigterm_then_resume_under_torchrun_equals_uninterrupted(tmp_path, env):
    out = str(tmp_path / "runs")
    args = [*COMMON, "--steps", "300", "--set", "train.eval_every=20", "--set", "train.checkpoint_every=10",
            "--labels-per-class", "20", "--out", out]
    whole = subprocess.run(torchrun("-m", "kdzoo", "distill", *args, "--name", "whole"), env=env,
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(torchrun("-m", "kdzoo", "distill", *args, "--name", "cut"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "cut" / "seed-0" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline, "run ended before the signal"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not (tmp_path / "runs" / "cut" / "seed-0" / "summary.json").exists()
    resumed = subprocess.run(torchrun("-m", "kdzoo", "distill", "--resume", str(tmp_path / "runs" / "cut")),
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr

    def final(name):
        s = json.loads((tmp_path / "runs" / name / "seed-0" / "summary.json").read_text())
        return {k: s[k] for k in ("steps", "best_step", "val_best", "test_best", "test_last")}

    assert final("cut") == final("whole")
