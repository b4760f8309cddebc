"""Every `kdzoo` command in README.md and docs/user-guide.md is one the installed CLI accepts as written:
its subcommand and flags parse, and a distill/teacher command's whole config (with the YAML files the
guide shows, `-c run.yaml`) builds and validates, naming strategies, models and datasets that exist.

Running every command takes many minutes (the README's bench alone ~15); the commands are run as written
by `python benchmarks/docs_commands.py`, and this test keeps them from drifting from the code in CI.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import timm

from kdzoo.cli import _config_data, _parser, _weights_path
from kdzoo.config import make_config

ROOT = Path(__file__).resolve().parents[1]


def _docs_commands_script():
    """``benchmarks/docs_commands.py`` (which runs the commands): its page parsing is the one this test checks."""
    spec = importlib.util.spec_from_file_location("docs_commands", ROOT / "benchmarks" / "docs_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _docs_commands_script()
PAGES, fenced, kdzoo_commands = script.PAGES, script.blocks, script.commands


def yaml_files(text: str) -> dict[str, str]:
    """The YAML blocks whose first line names their file (``# run.yaml``)."""
    out = {}
    for block in fenced(text, "yaml"):
        match = re.match(r"# ([\w.-]+\.yaml)", block)
        if match:
            out[match.group(1)] = block
    return out


COMMANDS = [(page.name, command) for page in PAGES for command in kdzoo_commands(page.read_text())]


def test_the_pages_hold_the_commands_a_newcomer_runs():
    readme = [c for page, c in COMMANDS if page == "README.md"]
    assert any(c.startswith("kdzoo compare runs/kd-taste runs/ce-taste") for c in readme)
    assert any("--name kd-taste" in c for c in readme) and any("--name ce-taste" in c for c in readme)
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("page,command", COMMANDS, ids=[f"{p}: {c[:60]}" for p, c in COMMANDS])
def test_every_documented_kdzoo_command_parses_and_its_config_builds(page, command, zoo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # weights written by an earlier command of the page (runs/ce-digits/...) are not here: their model is
    # read from the file when the command runs
    monkeypatch.setattr("kdzoo.cli.flags._name_from_file", lambda path, role: "from-file")
    for name, body in {k: v for p in PAGES for k, v in yaml_files(p.read_text()).items()}.items():
        (tmp_path / name).write_text(body)
    argv = shlex.split(command)[1:]
    listing = {"suites": [], "commands": [{"name": n, "help": "", "distribution": e.distribution}
                                          for n, e in zoo.collect().commands.items()]}
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in zoo.collect().commands:
        return  # a plugin's command parses its own arguments; kdzoo --help lists it
    try:
        args = _parser(listing).parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0, f"{page}: `{command}` does not parse"
        return
    if args.command not in ("distill", "teacher") or getattr(args, "resume", None):
        return
    config = make_config(_config_data(args), args.set)
    names = [spec.name for spec in config.strategy]
    assert all(name in zoo.collect().strategies for name in names), f"{page}: `{command}`: unknown strategy {names}"
    assert config.data.name.partition(":")[0] in zoo.collect().datasets, f"{page}: `{command}`: unknown dataset"
    for model in (config.student, config.teacher):
        if model is not None and not model.checkpoint and not _weights_path(model.name):
            assert zoo.model(model.name) or timm.is_model(model.name), f"{page}: `{command}`: unknown {model.name}"
