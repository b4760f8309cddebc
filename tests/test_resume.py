"""A run killed with SIGKILL and resumed ends with the same metrics as an uninterrupted run.

Each run is a child forked from this process (:data:`kdzoo.testing.FORKED`): a real process that a
signal reaches alone, without the interpreter's and torch's start-up."""

import signal

import pytest

from kdzoo.testing import FORKED, finish_run, finished, kill_and_resume

pytestmark = [pytest.mark.slow, pytest.mark.drill]

ARGS = ["distill", "--teacher", "mlp", "--student", "lenet5", "--strategy", "kd", "--data", "mnist5k",
        "--labels-per-class", "20", "--steps", "120", "--threads", "1", "--no-progress",
        "--set", "teacher_train.epochs=1", "--set", "teacher.kwargs.hidden=[64]", "--set", "train.eval_every=20",
        "--set", "train.checkpoint_every=10", "--set", "train.ema=0.9", "--set", "optim.name=sgd",
        "--set", "optim.lr=0.05", "--set", "data.augment=shift"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory, kdzoo_env):
    """The uninterrupted run both drills compare with (it trains the shared teacher first)."""
    run = tmp_path_factory.mktemp("runs") / "whole"
    finish_run(ARGS, run, env=kdzoo_env, launcher=FORKED)
    return finished(run)


@pytest.mark.parametrize("sig, expected_code", [(signal.SIGKILL, -9), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, kdzoo_env, whole, sig, expected_code):
    stopped = kill_and_resume(ARGS, tmp_path / "broken", min_step=30, sig=sig, env=kdzoo_env, launcher=FORKED)
    assert stopped.code == expected_code
    if sig == signal.SIGTERM:
        assert "checkpoint saved" in stopped.stderr
    assert finished(tmp_path / "broken") == whole
