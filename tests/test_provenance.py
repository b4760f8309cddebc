"""Where results came from: the facts a results page's header shows."""

import importlib.metadata as md
import re

from kdzoo.bench.provenance import command_line, distribution_versions, git_commit, host_line, provenance


def test_command_line_is_what_a_user_types_again():
    assert command_line(["/venv/bin/kdzoo", "bench", "--suite", "my suite.yaml"]) == "kdzoo bench --suite 'my suite.yaml'"
    assert command_line(["/x/kdzoo/__main__.py", "report", "runs/b"]) == "kdzoo report runs/b"
    assert command_line(["bench_script.py", "--fast"]) == "bench_script.py --fast"


def test_provenance_names_every_distribution_the_date_host_and_commit():
    got = provenance("kdzoo bench --suite tiny")
    assert got["command"] == "kdzoo bench --suite tiny"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["date"])
    assert got["host"]["cores"] and got["host"]["python"]
    versions = got["versions"]
    assert {"kdzoo", "torch", "timm", "numpy"} <= set(versions)
    plugins = {ep.dist.name for ep in md.entry_points(group="kdzoo") if ep.dist is not None}
    assert plugins <= set(versions)  # every installed plugin distribution, with its version
    commit = git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", commit)
    assert got["git_commit"] == commit
    assert distribution_versions()["kdzoo"] == versions["kdzoo"]


def test_host_line_reads_as_a_phrase():
    assert host_line({"name": "box", "cores": 2, "cpu": "Xeon", "memory_gib": 24.0, "os": "Linux-6.1",
                      "python": "3.11.7"}) == "box (2 cores, Xeon, 24 GiB; Linux-6.1; Python 3.11.7)"
    assert host_line("2 CPU cores, 24 GiB") == "2 CPU cores, 24 GiB"
    assert host_line(None) == "not recorded"
