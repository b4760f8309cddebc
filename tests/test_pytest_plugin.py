"""kdzoo's pytest plugin (``kdzoo.pytest_fixtures``): loaded through its ``pytest11`` entry point, it
isolates a suite's tests only where the suite asks (``kdzoo_isolate = true``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

THIRD_PARTY_TEST = '''
import os

def test_where_the_cache_is(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    isolated = os.environ.get("KDZOO_CACHE", "").startswith(base)
    assert isolated == (os.environ["EXPECT_ISOLATED"] == "1")
'''


def test_the_plugin_is_a_pytest11_entry_point_named_as_its_module():
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert entry_points == {"kdzoo.pytest_fixtures": "kdzoo.pytest_fixtures"}


def test_this_suite_runs_every_test_isolated(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    assert os.environ["KDZOO_CACHE"].startswith(base) and os.environ["KDZOO_INDEX"].startswith(base)


def test_a_suite_that_does_not_ask_is_left_alone_and_one_that_does_is_isolated(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")  # its own rootdir, no conftest
    (tmp_path / "test_third_party.py").write_text(THIRD_PARTY_TEST)
    env = {k: v for k, v in os.environ.items() if k not in ("KDZOO_CACHE", "KDZOO_INDEX")}
    for expect, extra in (("0", []), ("1", ["-o", "kdzoo_isolate=true"])):
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "kdzoo.pytest_fixtures",
                              "-p", "no:cacheprovider", *extra], cwd=tmp_path, env={**env, "EXPECT_ISOLATED": expect}, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
