"""The line third-party plugin authors rely on: three public doors, and in-repo plugins use only them.

Public means a name in the ``__all__`` of a public module (``kdzoo.PUBLIC_MODULES``): ``kdzoo`` (for
users), ``kdzoo.plugin`` (for plugin authors) and the tool modules ``kdzoo.data``, ``kdzoo.losses``,
``kdzoo.testing``. Every other ``kdzoo.*`` module is internal, so an in-repo plugin that reaches into
one would hide a breaking change from third-party authors, who copy what the in-repo plugins do. Names
that left ``kdzoo`` for another door keep working for one release, with a warning naming the new door.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import kdzoo

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted([*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("docs/example-plugin/src/**/*.py")])


def public_names(module: str) -> set[str]:
    return set(importlib.import_module(module).__all__)


def private_uses(path: Path) -> list[str]:
    """Every ``kdzoo`` import or attribute in ``path`` that is not public, as ``line: text``."""
    tree = ast.parse(path.read_text(), str(path))
    bad, aliases = [], {}  # local name -> the public kdzoo module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "kdzoo":
                    continue
                if alias.name not in kdzoo.PUBLIC_MODULES:
                    bad.append(f"{node.lineno}: import {alias.name}")
                aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "kdzoo"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kdzoo":
            if node.module not in kdzoo.PUBLIC_MODULES:
                bad.append(f"{node.lineno}: from {node.module} import ...")
                continue
            for alias in node.names:
                if f"{node.module}.{alias.name}" in kdzoo.PUBLIC_MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif alias.name not in public_names(node.module):
                    bad.append(f"{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):  # kdzoo.X and kdzoo.losses.Y through the imported names
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            module = aliases[node.value.id]
            if f"{module}.{node.attr}" not in kdzoo.PUBLIC_MODULES and node.attr not in public_names(module):
                bad.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return bad


def test_the_walk_finds_every_in_repo_plugin():
    packages = {p.relative_to(ROOT).parts[1] for p in PLUGIN_SOURCES}
    assert {"kdzoo-logit", "kdzoo-feature", "kdzoo-init", "kdzoo-datafree", "kdzoo-crosstask", "example-plugin"} <= packages


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_in_repo_plugins_import_only_public_kdzoo_names(path):
    assert private_uses(path) == [], f"{path.relative_to(ROOT)} uses private kdzoo names"


def test_the_walk_catches_private_imports_and_attributes(tmp_path):
    source = tmp_path / "careless.py"
    source.write_text("import kdzoo\nfrom kdzoo.train.teacher import task_teacher\nfrom kdzoo import Strategy, _LAZY\n"
                      "from kdzoo.losses import kd_loss\nx = kdzoo.contract.strategy.Needs\ny = kdzoo.losses.kd_loss\n"
                      "import kdzoo.plugin as kp\nz = kp.Strategy\nw = kp._LAZY\nfrom kdzoo.data import make_plan\n")
    assert sorted(private_uses(source)) == sorted([
        "2: from kdzoo.train.teacher import ...", "3: from kdzoo import Strategy", "3: from kdzoo import _LAZY",
        "10: from kdzoo.data import make_plan", "5: kdzoo.contract", "9: kp._LAZY"])


@pytest.mark.parametrize("module", kdzoo.PUBLIC_MODULES)
def test_every_door_declares_its_names(module):
    mod = importlib.import_module(module)
    assert mod.__all__ and len(set(mod.__all__)) == len(mod.__all__)
    assert not [n for n in mod.__all__ if n.startswith("_")]


def test_the_user_door_is_small_and_holds_no_plugin_internals():
    assert len(kdzoo.__all__) <= 16
    assert {"distill", "Distiller", "RunConfig", "load_model", "compare", "ConfigError", "version"} \
        <= set(kdzoo.__all__)
    assert not {"Strategy", "param", "hookimpl", "to_float", "masked_mean", "zero_like_graph"} & set(kdzoo.__all__)


def test_every_public_name_resolves_without_importing_timm():
    code = ("import importlib, kdzoo, sys, warnings; warnings.simplefilter('error')\n"
            "for m in kdzoo.PUBLIC_MODULES:\n"
            "    mod = importlib.import_module(m); [getattr(mod, n) for n in mod.__all__]\n"
            "assert 'timm' not in sys.modules, 'a public name imports timm'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", sorted(kdzoo._MOVED))
def test_a_name_that_left_kdzoo_still_works_with_a_warning_naming_its_door(name):
    home = kdzoo._MOVED[name]
    assert name in public_names(home)
    with pytest.warns(DeprecationWarning, match=rf"kdzoo\.{name} moved to {re.escape(home)}\.{name}"):
        old = getattr(kdzoo, name)
    assert old is getattr(importlib.import_module(home), name)


def test_the_doors_themselves_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for module in kdzoo.PUBLIC_MODULES:
            mod = importlib.import_module(module)
            [getattr(mod, n) for n in mod.__all__]


def test_the_public_api_table_in_plugins_md_lists_exactly_each_door():
    text = (ROOT / "docs" / "plugins.md").read_text()
    table = text[text.index("<!-- public-api -->"):text.index("<!-- /public-api -->")]
    listed: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`kdzoo"):
            listed.setdefault(cells[0].strip("`"), set()).update(re.findall(r"`(\w+)`", cells[2]))
    assert listed == {m: public_names(m) for m in ("kdzoo", "kdzoo.plugin", "kdzoo.data")}
