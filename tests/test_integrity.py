"""Integrity: one owner per run, checksummed artefacts that heal or refuse in one line, strict inputs.

Each case is observed from outside, as a user would: an exit code and one line, nothing changed on
disk, or the heal (a rebuilt file, a resume from the previous checkpoint) seen in the files.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from kdzoo.cli import main
from kdzoo.paths import own_run

from test_reliability import NO_TEACHER, _run_forked, assert_one_line_exit_2, snapshot


def _interrupted(run: Path) -> None:
    """Make a finished one-seed run look killed mid-training: its checkpoint stays, its summaries go."""
    (run / "summary.json").unlink()
    (run / "seed-0" / "summary.json").unlink()
    (run / "status.json").write_text(json.dumps({"state": "interrupted"}))


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "seed-0" / "metrics.jsonl").read_text().splitlines()]


def _index_rows(index: Path, run: Path) -> list[str]:
    if not index.exists():
        return []
    con = sqlite3.connect(index)
    return [r[0] for r in con.execute("SELECT state FROM runs WHERE path = ?", (str(run.resolve()),))]


def test_a_second_owner_is_refused_in_one_line_and_changes_nothing(tmp_path, capsys):
    assert main(NO_TEACHER + ["--steps", "4", "--out", str(tmp_path), "--name", "r"]) == 0
    run = tmp_path / "r"
    _interrupted(run)
    before = snapshot(run)
    with own_run(run):  # another process resuming it holds the folder
        code = main(["distill", "--resume", str(run)])
    assert_one_line_exit_2(code, capsys.readouterr().err, "is owned by")
    assert snapshot(run) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys, monkeypatch):
    index = tmp_path / "index.sqlite"
    assert main(NO_TEACHER + ["--steps", "4", "--out", str(tmp_path), "--name", "r"]) == 0
    run = tmp_path / "r"
    monkeypatch.setenv("KDZOO_INDEX", str(index))  # a fresh index: the resume must add no row
    before = snapshot(run)
    capsys.readouterr()
    assert main(["distill", "--resume", str(run)]) == 0
    assert "is finished" in capsys.readouterr().out
    assert snapshot(run) == before  # provenance.argv and summary.json untouched
    assert _index_rows(index, run) == []


@pytest.mark.slow
def test_two_concurrent_resumes_never_train_a_run_twice(tmp_path):
    """The double-resume drill (benchmarks/integrity_drills.py repeats it 10 times)."""
    steps = 300
    argv = NO_TEACHER + ["--steps", str(steps), "--threads", "1", "--set", "train.eval_every=10", "--out",
                         str(tmp_path), "--name", "r"]
    assert main(argv) == 0
    run = tmp_path / "r"
    for trial in range(2):
        _interrupted(run)
        (run / "seed-0" / "checkpoint.pt").unlink()  # train from step 0: both resumes would do all the work
        index = tmp_path / f"index-{trial}.sqlite"
        codes = _run_forked([["distill", "--resume", str(run)]] * 2, {"KDZOO_INDEX": str(index)})
        assert sorted(codes) in ([0, 0], [0, 2]), codes  # the loser is refused, or finds the run finished
        assert _steps(run) == list(range(10, steps + 1, 10))  # every evaluation once, in order
        assert _index_rows(index, run) == ["done"]


# -- checksummed artefacts -------------------------------------------------------------------------------
def _zero(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + count] = bytes(count)
    path.write_bytes(bytes(data))


def _overwrite(path: Path, count: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    start = max(0, len(data) // 2 - count // 2)
    data[start:start + count] = bytes((i * 37 + 11) % 256 for i in range(min(count, len(data) - start)))
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a checkpoint\n" * 40)


def _pickled_code(path: Path) -> None:
    import torch

    torch.save({"student": os.system}, path)  # a pickle that names code: kdzoo must never run it


DAMAGE = {"zeroed": _zero, "overwritten": _overwrite, "truncated": _truncate, "garbage": _garbage,
          "pickled-code": _pickled_code}


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A finished one-seed run with checkpoints at steps 4 (kept as previous) and 6, and its results."""
    out = tmp_path_factory.mktemp("checkpointed")
    argv = NO_TEACHER + ["--steps", "6", "--set", "train.checkpoint_every=2", "--set", "train.eval_every=2",
                         "--out", str(out), "--name", "r"]
    assert main(argv) == 0
    run = out / "r"
    return run, json.loads((run / "seed-0" / "summary.json").read_text())


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_checkpoint_is_one_line_and_the_run_stays_resumable(tmp_path, capsys, checkpointed, damage):
    import shutil

    original, finished = checkpointed
    run = tmp_path / "r"
    shutil.copytree(original, run)
    _interrupted(run)
    latest = run / "seed-0" / "checkpoint.pt"
    good = latest.read_bytes()
    DAMAGE[damage](latest)
    before = snapshot(run)
    capsys.readouterr()
    code = main(["distill", "--resume", str(run)])
    err = capsys.readouterr().err
    assert_one_line_exit_2(code, err, "is damaged")
    assert "remove it to resume from checkpoint.prev.pt" in err and "weights_only" not in err
    assert snapshot(run) == before  # not marked failed: nothing changed
    if damage == "zeroed":  # restored, it resumes from it
        latest.write_bytes(good)
    else:  # removed, it resumes from the previous checkpoint (step 4)
        latest.unlink()
    assert main(["distill", "--resume", str(run)]) == 0
    resumed = json.loads((run / "seed-0" / "summary.json").read_text())
    for key in ("test_best", "test_last", "val_best", "best_step", "steps"):
        assert resumed[key] == finished[key], key  # the same numbers as the run that was never damaged


def test_checksummed_files_refuse_every_kind_of_damage(tmp_path):
    import torch

    from kdzoo.integrity import (DamagedFile, load_torch, safetensors_bytes, save_torch, verify_digest,
                                 verify_safetensors, write_digest)

    state = {"w": torch.arange(4096, dtype=torch.float32), "step": 3}
    for name, damage in DAMAGE.items():
        path = tmp_path / f"{name}.pt"
        save_torch(state, path)
        assert torch.equal(load_torch(path)["w"], state["w"])
        damage(path)
        with pytest.raises(DamagedFile):
            load_torch(path)
    for name, damage in {k: v for k, v in DAMAGE.items() if k != "pickled-code"}.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(safetensors_bytes({"w": state["w"]}, {"note": "x"}))
        assert verify_safetensors(path) is True
        damage(path)
        with pytest.raises(DamagedFile):
            verify_safetensors(path)
        raw = tmp_path / f"{name}.bin"
        raw.write_bytes(bytes(range(256)) * 64)
        write_digest(raw)
        assert verify_digest(raw) is True
        damage(raw)
        with pytest.raises(DamagedFile):
            verify_digest(raw)
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy)  # written before digests existed: read as it is
    assert load_torch(legacy)["step"] == 3


def _tensors(path: Path) -> dict[str, bytes]:
    from safetensors.torch import load_file

    return {k: v.numpy().tobytes() for k, v in load_file(str(path)).items()}


@pytest.mark.parametrize("also_checkpoint", [False, True], ids=["export", "export+checkpoint"])
def test_a_damaged_cached_teacher_is_moved_aside_and_rebuilt_with_one_line(tmp_path, capsys, monkeypatch,
                                                                          also_checkpoint):
    from test_reliability import BASE

    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))  # this test's own teacher
    argv = BASE + ["--strategy", "kd", "--out", str(tmp_path / "runs")]
    assert main(argv + ["--name", "first"]) == 0
    [cached] = (tmp_path / "cache" / "teachers").glob("*/teacher.safetensors")
    good = tmp_path / "good.safetensors"
    good.write_bytes(cached.read_bytes())
    _overwrite(cached)
    if also_checkpoint:  # then it is trained again from its previous checkpoint
        _truncate(cached.parent / "checkpoint.pt")
    capsys.readouterr()
    assert main(argv + ["--name", "second"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "is damaged" in line]
    assert len(lines) == 1 + also_checkpoint and all("moved aside" in line for line in lines), out
    assert _tensors(cached) == _tensors(good)  # rebuilt from the teacher's own checkpoints: the same teacher
    assert len(list(cached.parent.glob("teacher.safetensors.damaged-*"))) == 1
    first, second = (json.loads((tmp_path / "runs" / n / "summary.json").read_text()) for n in ("first", "second"))
    assert first["seeds"]["0"]["test_best"] == second["seeds"]["0"]["test_best"]


def test_a_damaged_run_index_is_moved_aside_and_rebuilt_from_the_run_folders(tmp_path, capsys, monkeypatch):
    index = tmp_path / "index.sqlite"
    monkeypatch.setenv("KDZOO_INDEX", str(index))
    out = tmp_path / "runs"
    assert main(NO_TEACHER + ["--out", str(out), "--name", "a"]) == 0
    index.write_bytes(b"\0" * 4096 + b"not a database" * 100)
    capsys.readouterr()
    assert main(NO_TEACHER + ["--out", str(out), "--name", "b"]) == 0  # records its row into a rebuilt index
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "was damaged" in line]) == 1, err
    assert "rebuilt from 1 run folder(s)" in err
    assert len(list(tmp_path.glob("index.sqlite.damaged-*"))) == 1
    assert main(["runs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((Path(r["path"]).name, r["state"], r["strategy"]) for r in rows) == [("a", "done", "ce"),
                                                                                    ("b", "done", "ce")]


# -- strict inputs ---------------------------------------------------------------------------------------
def test_an_image_folder_follows_a_link_loop_once(tmp_path):
    from PIL import Image

    from kdzoo.data.files import load_imagefolder

    for c, v in (("a", 10), ("b", 200)):
        for i in range(2):
            (tmp_path / c).mkdir(exist_ok=True)
            Image.new("L", (8, 8), v + i).save(tmp_path / c / f"{i}.png")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")  # a/loop/loop/... would be 40 images from 2
    (tmp_path / "b" / "again").symlink_to(tmp_path / "b")
    bundle = load_imagefolder(str(tmp_path), None)
    assert bundle.y.tolist() == [0, 0, 1, 1]


def test_an_error_line_is_cut_at_a_readable_length_and_debug_shows_it_whole(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_list := "optim:\n  lr: [" + ", ".join(["0.5"] * 20000) + "]\n")
    assert yaml_list
    code = main(["distill", "-c", str(config), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert_one_line_exit_2(code, err, "more characters; rerun with --debug for the whole line")
    assert len(err) < 700
    assert main(["distill", "-c", str(config), "--out", str(tmp_path / "o"), "--debug"]) == 2
    whole = capsys.readouterr().err.strip().splitlines()[-1]
    assert whole.startswith("kdzoo: error:") and len(whole) > 20000
    assert not (tmp_path / "o").exists()


def test_out_and_cache_that_cannot_be_created_are_one_line_before_anything_runs(tmp_path, capsys, monkeypatch):
    index = tmp_path / "index.sqlite"
    monkeypatch.setenv("KDZOO_INDEX", str(index))
    assert_one_line_exit_2(main(NO_TEACHER + ["--out", "/proc/self"]), capsys.readouterr().err,
                           "cannot create a run folder in it")
    monkeypatch.setenv("KDZOO_CACHE", "/proc/self/kdzoo-cache")
    assert_one_line_exit_2(main(NO_TEACHER + ["--out", str(tmp_path / "o")]), capsys.readouterr().err,
                           "KDZOO_CACHE '/proc/self/kdzoo-cache' cannot be created")
    assert not (tmp_path / "o").exists() and not index.exists()  # no run folder, no index row


def test_report_opens_no_browser_with_no_open_under_ci_or_without_a_display(monkeypatch):
    from kdzoo.bench import report

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(report.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    assert report.can_open_browser()
    monkeypatch.setenv("CI", "true")
    assert not report.can_open_browser()
    monkeypatch.delenv("CI")
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not report.can_open_browser()


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_rank_0_holds_the_teacher_lock_and_the_others_wait(tmp_path, monkeypatch, rank):
    import fcntl

    from kdzoo.train import distributed, teacher

    waits = []
    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(rank=rank, world_size=2))
    monkeypatch.setattr(distributed, "barrier", lambda: waits.append(rank))
    with teacher.teacher_lock(tmp_path, "key", log=lambda *a: None):
        assert waits == [rank]  # every rank passes the barrier before the teacher is looked up
        lock = tmp_path / "key.lock"
        assert lock.exists() == (rank == 0)
        if rank == 0:  # held for the job: another job's rank 0 would wait
            with open(lock, "a") as other, pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
