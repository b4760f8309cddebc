"""DDP under torchrun (gloo, 2 CPU processes, tiny models)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.testing import FORKED, finish_run, kill_and_resume

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
COMMON = ["--teacher", "mlp", "--student", "mlp", "--strategy", "kd", "--data", "digits", "--threads", "1",
          "--no-progress", "--set", "teacher.kwargs.hidden=[64]", "--set", "student.kwargs.hidden=[32]",
          "--set", "teacher_train.epochs=3", "--set", "optim.name=sgd", "--set", "optim.lr=0.1",
          "--set", "data.batch_size=64"]
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")


def torchrun(*args):
    return [*TORCHRUN, *args]


@pytest.fixture
def env(tmp_path, kdzoo_env):
    """The session's teacher cache (the first run trains the teacher, the rest load it), this test's spy folder."""
    return dict(kdzoo_env, KDZOO_SPY_DIR=str(tmp_path), OMP_NUM_THREADS="1")


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_first_ddp_step_equals_single_process_step_and_rank0_alone_writes(tmp_path, env):
    out = str(tmp_path / "runs")
    finish_run(["distill", *COMMON, "--steps", "1"], tmp_path / "runs" / "single", env=env, launcher=FORKED)
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
    args = ["distill", *COMMON, "--steps", "300", "--set", "train.eval_every=20", "--set", "train.checkpoint_every=10",
            "--labels-per-class", "20"]
    finish_run(args, tmp_path / "whole", env=env, launcher=(*TORCHRUN, "-m", "kdzoo"))
    stopped = kill_and_resume(args, tmp_path / "cut", min_step=40, sig=signal.SIGTERM, env=env,
                              launcher=(*TORCHRUN, "-m", "kdzoo"))  # torchrun forwards the SIGTERM to its ranks
    assert stopped.code != 0

    def final(name):
        s = json.loads((tmp_path / name / "seed-0" / "summary.json").read_text())
        return {k: s[k] for k in ("steps", "best_step", "val_best", "test_best", "test_last")}

    assert final("cut") == final("whole")
