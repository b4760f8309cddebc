"""CRD end to end: the memory banks across kill -9 and resume, and under 2-process DDP (gloo, CPU).

Each run goes through ``crd_spy.py`` (the kdzoo CLI that saves each rank's CRD state at exit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.testing import finish_run, resume_run, start_run, stop_after_step

pytestmark = [pytest.mark.slow, pytest.mark.drill]
SPY = str(Path(__file__).with_name("crd_spy.py"))
COMMON = ["--teacher", "mlp", "--student", "mlp", "--strategy", "crd", "--data", "digits", "--threads", "1",
          "--no-progress", "--set", "teacher.kwargs.hidden=[64]", "--set", "student.kwargs.hidden=[32]",
          "--set", "teacher_train.epochs=3", "--set", "strategy.crd.negatives=256", "--labels-per-class", "20",
          "--set", "train.eval_every=20", "--set", "train.checkpoint_every=10", "--steps", "150"]
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")


def spy_env(env, tmp_path, name):
    out = tmp_path / f"spy-{name}"
    out.mkdir()
    return dict(env, KDZOO_SPY_DIR=str(out), OMP_NUM_THREADS="1"), out


def final(run):
    s = json.loads((run / "seed-0" / "summary.json").read_text())
    return {k: s[k] for k in ("steps", "best_step", "val_best", "test_best", "test_last")}


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("ddp", [False, True], ids=["single", "ddp2"])
def test_memory_bank_after_kill9_and_resume_equals_uninterrupted(tmp_path, kdzoo_env, ddp):
    """The teacher comes from the session's cache: the first run trains it, every later one loads it."""
    launcher = (*TORCHRUN, SPY) if ddp else (sys.executable, SPY)
    e, whole_dir = spy_env(kdzoo_env, tmp_path, "whole")
    finish_run(["distill", *COMMON], tmp_path / "whole", env=e, launcher=launcher)
    e, cut_dir = spy_env(kdzoo_env, tmp_path, "cut")
    proc = start_run(["distill", *COMMON], tmp_path / "cut", env=e, launcher=launcher)
    # SIGKILL to the launcher and every rank (torchrun starts each in its own session)
    assert stop_after_step(proc, tmp_path / "cut", min_step=40, whole_tree=True).code != 0
    assert not (tmp_path / "cut" / "seed-0" / "summary.json").exists()
    assert not list(cut_dir.glob("crd-rank*.pt"))  # killed: nothing dumped
    resume_run(tmp_path / "cut", env=e, launcher=launcher)
    assert final(tmp_path / "cut") == final(tmp_path / "whole")
    ranks = ["0", "1"] if ddp else ["0"]
    whole = {r: torch.load(whole_dir / f"crd-rank{r}.pt") for r in ranks}
    resumed = {r: torch.load(cut_dir / f"crd-rank{r}.pt") for r in ranks}
    assert int(whole["0"]["draws"]) == 150 and (whole["0"]["z"] > 0).all()
    for r in ranks:
        assert_same_state(resumed[r], whole[r])
    if ddp:  # every rank holds the same banks and Z (gathered updates, averaged Z)
        for key in ("memory_s", "memory_t", "z", "draws"):
            assert torch.equal(whole["0"][key], whole["1"][key]), key
