"""End-to-end: 20-iteration CLI runs on ``digits``, PNG artefacts, and no training sample ever read."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from kdzoo.cli import main

TEACHER = ["--data", "digits", "--teacher", "lenet5", "--set", "teacher.kwargs.batchnorm=true",
           "--set", "teacher.input_size=[16,16]", "--set", "teacher_train.epochs=3", "--student", "lenet5",
           "--set", "student.input_size=[16,16]", "--set", "student.kwargs.width=0.5", "--threads", "1",
           "--no-progress", "--set", "train.eval_every=10"]
METHODS = {
    "dafl": ["--set", "strategy.dafl.ngf=8", "--set", "strategy.dafl.batch_size=32"],
    "dfad": ["--set", "strategy.dfad.ngf=8", "--set", "strategy.dfad.batch_size=32"],
    "deep-inversion": ["--set", "strategy.deep-inversion.iters=5", "--set", "strategy.deep-inversion.synth_batch=32",
                       "--set", "strategy.deep-inversion.batches=2"],
    "noise-kd": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_twenty_iteration_cli_run_writes_grids_and_curve(name, tmp_path, capsys):
    rc = main(["distill", *TEACHER, "--strategy", name, *METHODS[name], "--steps", "20", "--out", str(tmp_path),
               "--name", name, "--set", f"strategy.{name}.grid_every=10"])
    assert rc == 0, capsys.readouterr().err
    seed = tmp_path / name / "seed-0"
    summary = json.loads((seed / "summary.json").read_text())
    assert summary["steps"] == 20 and 0 <= summary["test_best"]["acc"] <= 100
    grids = sorted(p.name for p in (seed / "synthetic").glob("step-*.png"))
    assert grids == ["step-000000.png", "step-000010.png", "step-000019.png"]
    assert (seed / "synthetic" / "step-000000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (seed / "curve.png").exists()
    if name == "deep-inversion":
        assert sorted(p.name for p in (seed / "synthetic").glob("round-*.png")) == ["round-0001.png", "round-0002.png"]


@pytest.mark.slow
def test_bn_less_teacher_fails_in_one_line(tmp_path, capsys):
    args = [a if a != "teacher.kwargs.batchnorm=true" else "teacher.kwargs.batchnorm=false" for a in TEACHER]
    rc = main(["distill", *args, "--strategy", "deep-inversion", "--steps", "2", "--out", str(tmp_path), "--name", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "BatchNorm" in err and "batchnorm=true" in err
    assert not (tmp_path / "x").exists()


class Spy(torch.Tensor):
    """``bundle.x`` that records every row it gives out while recording is on."""

    reads: set[int] = set()
    recording = False

    def __getitem__(self, idx):
        out = super().__getitem__(idx)
        if Spy.recording:
            n = self.shape[0]
            rows = idx if not isinstance(idx, tuple) else idx[0]
            if isinstance(rows, slice):
                Spy.reads.update(range(n)[rows])
            elif isinstance(rows, int):
                Spy.reads.add(rows % n)
            else:
                Spy.reads.update(int(i) for i in torch.as_tensor(rows).reshape(-1).tolist())
        return out.as_subclass(torch.Tensor)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dafl", "deep-inversion"])
def test_data_free_run_never_reads_a_training_sample(name, tmp_path, monkeypatch, capsys):
    import kdzoo.train.runs as engine
    import kdzoo.train.seed_run as seed_run

    prepare, run_seed, make_plan = engine.prepare, engine.run_seed, seed_run.make_plan

    def no_loader(*args, **kwargs):  # the run driver builds every real-data batch plan through make_plan
        if Spy.recording:
            raise AssertionError("a training loader was built in data-free mode")
        return make_plan(*args, **kwargs)

    monkeypatch.setattr(seed_run, "make_plan", no_loader)
    seen = {}

    def spy_prepare(config, zoo, *rest):
        run = prepare(config, zoo, *rest)
        run.bundle.x = run.bundle.x.as_subclass(Spy)
        seen["splits"] = run.splits
        return run

    def spy_run_seed(*args, **kwargs):
        bound = inspect.signature(run_seed).bind(*args, **kwargs)
        student_run = bound.arguments["teacher"] is not None  # not the teacher's own (supervised) training
        Spy.reads, Spy.recording = set(), student_run
        try:
            return run_seed(*args, **kwargs)
        finally:
            Spy.recording = False

    monkeypatch.setattr(engine, "prepare", spy_prepare)
    monkeypatch.setattr(engine, "run_seed", spy_run_seed)
    rc = main(["distill", *TEACHER, "--strategy", name, *METHODS[name], "--steps", "6", "--out", str(tmp_path),
               "--name", name])
    assert rc == 0, capsys.readouterr().err
    splits = seen["splits"]
    train = set(splits.train.tolist())
    assert Spy.reads, "the spy saw nothing: it is not wired in"
    assert not Spy.reads & train, f"{len(Spy.reads & train)} training samples were read"
    assert set(splits.val.tolist()) <= Spy.reads and set(splits.test.tolist()) <= Spy.reads  # evaluation only
    assert Spy.reads <= set(np.concatenate([splits.val, splits.test]).tolist())
