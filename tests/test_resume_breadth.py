"""Resume exactness of the breadth methods (issue 16): a run stopped by SIGTERM mid-way and resumed
ends with the metrics, weights and log of an uninterrupted run. In-process (no interpreter start-up):
the trainer's own signal handler checkpoints and stops, as it does for a user's Ctrl-C."""

from __future__ import annotations

import os
import signal

import pytest

from kdzoo.cli import main
from kdzoo.testing import finished, same_weights
from kdzoo.train.trainer import Trainer

pytestmark = pytest.mark.drill  # a run stopped and resumed, against an uninterrupted one

BASE = ["distill", "--teacher", "lenet5", "--student", "lenet5", "--data", "mnist5k", "--labels-per-class", "20",
        "--steps", "24", "--threads", "1", "--no-progress", "--set", "teacher_train.epochs=1",
        "--set", "train.checkpoint_every=4", "--set", "train.eval_every=6"]


@pytest.mark.parametrize("strategy", [["--strategy", "dist"],
                                      ["--strategy", "kd", "--set", "strategy.logit_standardize=true"],
                                      ["--strategy", "reviewkd"]], ids=["dist", "kd-logit-std", "reviewkd"])
def test_sigterm_then_resume_equals_uninterrupted(tmp_path, monkeypatch, strategy):
    out = tmp_path / "runs"
    assert main(BASE + strategy + ["--out", str(out), "--name", "whole"]) == 0
    real_step = Trainer.train_step

    def stop_at_step_9(self, step):
        logged = real_step(self, step)
        if step == 9:
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler: checkpoint, then stop
        return logged

    monkeypatch.setattr(Trainer, "train_step", stop_at_step_9)
    assert main(BASE + strategy + ["--out", str(out), "--name", "broken"]) == 128 + signal.SIGTERM
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert main(["distill", "--resume", str(out / "broken")]) == 0
    (s1, m1, w1), (s2, m2, w2) = finished(out / "whole", weights=True), finished(out / "broken", weights=True)
    assert s1 == s2 and m1 == m2 and same_weights(w1, w2)
