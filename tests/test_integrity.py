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
