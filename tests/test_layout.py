"""The layout of ``kdzoo/``: no import circles, and a core that names no plugin.

Import graph rule (what counts as an edge ``A -> B``): every ``import``/``from ... import`` in module
``A`` that runs at import or call time — imports inside functions included, imports under
``if TYPE_CHECKING:`` excluded (they never run). ``from P import x`` is an edge to ``P.x`` when that is
a module, else to ``P``. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those
are edges too, except:

* edges from a module to a package that encloses it are dropped: Python runs a package's
  ``__init__`` before any of its submodules, so such an import only reads a name from a package
  already being set up (``from .. import version`` in ``kdzoo/cli.py``);
* edges from a package's ``__init__`` down into its own submodules are dropped: that is the package
  re-exporting its parts (``kdzoo/models/__init__.py`` re-exports ``kdzoo.models.wrapper``), which
  Python executes as part of importing the package.

Every other edge counts, and the graph must have no cycle (no strongly connected component of two
or more modules).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "kdzoo"
PLUGIN_PACKAGES = ("kdzoo_logit", "kdzoo_feature", "kdzoo_init", "kdzoo_datafree", "kdzoo_crosstask",
                   "kdzoo_example")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST):
    """Import nodes that can run: everything but the body of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in [child] + list(runtime_imports(child))
                        if isinstance(n, (ast.Import, ast.ImportFrom)))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from runtime_imports(node)


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in mods else source)
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):  # the target and every package it runs on the way
                dep = ".".join(parts[:i])
                if dep not in mods or dep == name:
                    continue
                if name == dep or name.startswith(dep + "."):  # an enclosing package: already being set up
                    continue
                if path.name == "__init__.py" and dep.startswith(name + "."):  # a package re-exporting its parts
                    continue
                graph[name].add(dep)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_rooms_and_function_level_imports():
    graph = import_graph()
    assert {"kdzoo.contract.strategy", "kdzoo.zoo.plugins", "kdzoo.train.runs", "kdzoo.bench.suite",
            "kdzoo.models.wrapper", "kdzoo.data.relabel"} <= set(graph)
    assert "kdzoo.train.teacher" in graph["kdzoo.train.runs"]  # imported inside a function
    assert "kdzoo.zoo.plugins" not in graph["kdzoo.contract.context"]  # under TYPE_CHECKING only


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kdzoo_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_contract_imports_nothing_below_it():
    """The contract room depends only on itself and ``kdzoo.config`` (``param``: a strategy's parameters)."""
    graph = import_graph()
    for name in graph:
        if name.startswith("kdzoo.contract."):
            assert all(dep.startswith("kdzoo.contract") or dep == "kdzoo.config" for dep in graph[name]), (
                name, graph[name])
    # and config on the contract, or on a leaf that imports no kdzoo module (kdzoo.safe_yaml: strict YAML)
    assert all(dep.startswith("kdzoo.contract") or not graph.get(dep) for dep in graph["kdzoo.config"]), \
        graph["kdzoo.config"]


def test_teacher_code_never_imports_the_run_driver():
    assert "kdzoo.train.runs" not in import_graph()["kdzoo.train.teacher"]


def test_the_core_names_no_plugin_and_branches_on_no_family():
    """Core decisions use capabilities (``reads_train_data``, ``Needs``, hooks), never a family or plugin name."""
    bad = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "family" or isinstance(s, ast.Name)
                       and s.id == "family" for s in sides):
                    bad.append(f"{name}:{node.lineno}: compares a family")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if any(p in node.value for p in PLUGIN_PACKAGES):
                    bad.append(f"{name}:{node.lineno}: names a plugin ({node.value[:40]!r})")
    assert bad == []
