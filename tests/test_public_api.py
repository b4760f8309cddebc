"""The line third-party plugin authors rely on: in-repo plugins use only kdzoo's public API.

Public means a name in ``kdzoo.__all__`` or a name of a public module (``kdzoo.PUBLIC_MODULES``:
``kdzoo.losses``, ``kdzoo.testing``) that does not start with an underscore. Every other ``kdzoo.*``
module is internal, so an in-repo plugin that reaches into one would hide a breaking change from
third-party authors, who copy what the in-repo plugins do.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import kdzoo

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted([*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("docs/example-plugin/src/**/*.py")])


def public_names(module: str) -> set[str]:
    if module == "kdzoo":
        return set(kdzoo.__all__)
    mod = importlib.import_module(module)
    return set(getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")])


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
                      "from kdzoo.losses import kd_loss\nx = kdzoo.contract.strategy.Needs\ny = kdzoo.losses.kd_loss\n")
    assert private_uses(source) == ["2: from kdzoo.train.teacher import ...", "3: from kdzoo import _LAZY",
                                    "5: kdzoo.contract"]


def test_every_public_name_resolves_without_importing_timm():
    import subprocess
    import sys

    code = ("import kdzoo, sys; [getattr(kdzoo, n) for n in kdzoo.__all__]; "
            "assert 'timm' not in sys.modules, 'a public name imports timm'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_public_api_table_in_plugins_md_lists_exactly_kdzoo_all():
    text = (ROOT / "docs" / "plugins.md").read_text()
    table = text[text.index("<!-- public-api -->"):text.index("<!-- /public-api -->")]
    listed = set(re.findall(r"`(\w+)`", table))
    assert listed == set(kdzoo.__all__)
