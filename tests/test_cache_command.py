"""``kdzoo cache``: the cached teachers and stores with their size and age, cleared by key, kind or age;
a teacher in training (its lock held) is never removed under it; the run index is never touched."""

from __future__ import annotations

import json
import os
import time

import pytest
from filelock import FileLock

from kdzoo.cli import main


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("KDZOO_CACHE", str(root))
    teacher = root / "teachers" / "aaaa1111"
    teacher.mkdir(parents=True)
    (teacher / "teacher.safetensors").write_bytes(b"x" * 2048)
    (teacher / "teacher.json").write_text(json.dumps({"name": "mlp", "classes": list("0123456789"),
                                                      "input_shape": [1, 8, 8], "val": {"acc": 97.2222}}))
    busy = root / "teachers" / "bbbb2222"
    busy.mkdir()
    (busy / "checkpoint.pt").write_bytes(b"y" * 100)
    (root / "teacher-outputs").mkdir()
    old = root / "teacher-outputs" / "cccc3333.pt"
    old.write_bytes(b"z" * 10)
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    (root / "index.sqlite").write_bytes(b"runs")
    return root


def test_cache_lists_every_entry_with_size_age_and_the_teacher_it_holds(cache, capsys):
    assert main(["cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kind", "key", "size", "age", "what"]
    teacher = next(line for line in lines if "aaaa1111" in line)
    assert "2.1 KB" in teacher and "mlp, 10 classes, 1x8x8, val acc 97.22" in teacher
    assert any("bbbb2222" in line and "incomplete" in line for line in lines)
    assert lines[-1].startswith("3 entries") and "index.sqlite" not in "\n".join(lines)
    assert main(["cache", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in rows} == {"aaaa1111", "bbbb2222", "cccc3333"}


def test_cache_clear_by_age_by_key_and_never_under_a_training_teacher(cache, capsys):
    assert main(["cache", "clear"]) == 2  # no filter: nothing is removed by accident
    assert "needs a filter" in capsys.readouterr().err
    assert main(["cache", "clear", "--older-than", "7"]) == 0
    assert "removed teacher-outputs cccc3333" in capsys.readouterr().out
    assert not (cache / "teacher-outputs" / "cccc3333.pt").exists() and (cache / "teachers" / "aaaa1111").is_dir()
    assert main(["cache", "clear", "--key", "nope"]) == 2
    with FileLock(cache / "teachers" / "bbbb2222.lock"):
        assert main(["cache", "clear", "--kind", "teachers"]) == 0
        out = capsys.readouterr().out
    assert "removed teachers aaaa1111" in out and "skipped teachers bbbb2222" in out
    assert (cache / "teachers" / "bbbb2222").is_dir() and not (cache / "teachers" / "aaaa1111").exists()
    assert main(["cache", "clear", "--all"]) == 0
    assert not (cache / "teachers" / "bbbb2222").exists() and (cache / "index.sqlite").read_bytes() == b"runs"
