"""The layout of ``kdzoo/``: no import circles, and a core that names no plugin.

Import graph rule (what counts as an edge ``A -> B``): every ``import``/``from ... import`` in module
``A`` that runs at import or call time — imports inside functions included, imports under
``if TYPE_CHECKING:`` excluded (they never run). ``from P import x`` is an edge to ``P.x`` when that is
a module, else to ``P``. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those
are edges too, except:

* edges from a module to a package that encloses it are dropped: Python runs a package's
  ``__init__`` before any of its submodules, so such an import only reads a name from a package
  already being set up (``from .. import safe_yaml`` in ``kdzoo/config/loading.py``: the edge to ``kdzoo``
  is dropped, the one to ``kdzoo.safe_yaml`` counts);
* edges from a package's ``__init__`` down into its own submodules are dropped: that is the package
  re-exporting its parts (``kdzoo/models/__init__.py`` re-exports ``kdzoo.models.wrapper``), which
  Python executes as part of importing the package.

Every other edge counts, and the graph must have no cycle (no strongly connected component of two
or more modules).
"""

from __future__ import annotations

import ast
import re
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
    """The contract room depends only on itself: a strategy's parameter declarations live in it (``params``)."""
    graph = import_graph()
    for name in graph:
        if name.startswith("kdzoo.contract."):
            assert all(dep.startswith("kdzoo.contract") for dep in graph[name]), (name, graph[name])
    # config (each module of the package) on the contract, on itself, or on a leaf that imports no kdzoo module
    # (kdzoo.safe_yaml: strict YAML)
    for name in (n for n in graph if n == "kdzoo.config" or n.startswith("kdzoo.config.")):
        assert all(dep.startswith(("kdzoo.contract", "kdzoo.config")) or not graph.get(dep) for dep in graph[name]), \
            (name, graph[name])


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


# The in-repo plugins' names a core message may still use, as the one example of a syntax (``--strategy
# kd``, the stack ``weight-selection+kd``, the pin ``kd: kdzoo-logit``), and names that are also words.
EXAMPLE_NAMES = {"kd", "weight-selection", "kdzoo-logit", "at", "dist"}


def in_repo_plugin_names() -> set[str]:
    """Every strategy name and distribution name the in-repo plugins declare, read from their sources."""
    names = {p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml")}
    for path in [*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("docs/example-plugin/src/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                names.update(st.value.value for st in node.body if isinstance(st, ast.Assign)
                             and [getattr(t, "id", None) for t in st.targets] == ["name"]
                             and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str))
    return names


def named_plugin_items(text: str, names: set[str]) -> list[str]:
    """The in-repo strategy or distribution names ``text`` spells out as words (``rkd``, not ``rkd_loss``)."""
    return [n for n in sorted(names - EXAMPLE_NAMES) if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]


def message_strings(tree: ast.AST):
    """String constants that reach a user (messages, help, hints): every one but the docstrings."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_the_plugin_names_walk_sees_the_in_repo_strategies():
    names = in_repo_plugin_names()
    assert {"rkd", "sp", "refilled", "projected-feature", "class-mapped-kd", "dkd", "kdzoo-crosstask"} <= names
    old_hint = ("use a cross-task strategy: class-mapped-kd (when the data's labels are a function of the "
                "teacher's), or the label-space-agnostic rkd, sp, projected-feature, refilled (kdzoo-crosstask)")
    assert named_plugin_items(old_hint, names) == ["class-mapped-kd", "kdzoo-crosstask", "projected-feature",
                                                   "refilled", "rkd", "sp"]
    assert named_plugin_items("rkd_distance_loss, e.g. --strategy kd, a kdzoo-logit:kd pin", names) == []


def test_core_messages_name_no_in_repo_strategy_or_distribution():
    """A hint that recommends ``refilled`` is wrong wherever kdzoo-crosstask is not installed."""
    names = in_repo_plugin_names()
    bad = [f"{name}:{node.lineno}: {items} in {node.value[:60]!r}" for name, path in modules().items()
           for node in message_strings(ast.parse(path.read_text(), str(path)))
           if (items := named_plugin_items(node.value, names))]
    assert bad == []


# -- the order of the rooms -------------------------------------------------------------------------
# Each room (a sub-package, or a top-level module) and its floor, as docs/architecture.md states the
# order: a module may import its own floor and the floors below, never one above. There are no
# exceptions: a helper a lower room needs lives in that room (or below it).
FLOORS = {
    "contract": 0, "atomic": 0, "safe_yaml": 0, "integrity": 0, "progress": 0, "paths": 0,  # contract, low-level I/O
    "losses": 0, "versions": 0, "loggers": 0,  # functions on tensors; installed versions; trackers
    "config": 1,
    "data": 2, "models": 2,
    "user": 3,  # your own modules and datasets, wrapped with data and models
    "zoo": 4,
    "train": 5,
    "bench": 6, "distiller": 6, "testing": 6,
    "cli": 7, "__main__": 7, "cache": 7, "plugin": 7, "pytest_fixtures": 7, "kdzoo": 7,
}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(name, dep) for name, deps in graph.items() for dep in deps
            if FLOORS[room_of(dep)] > FLOORS[room_of(name)]}


def test_every_room_has_a_floor():
    assert {room_of(m) for m in modules()} <= set(FLOORS), {room_of(m) for m in modules()} - set(FLOORS)


def test_rooms_import_downwards_only():
    assert upward_imports(import_graph()) == set(), "upward imports: move the helper to the room it serves"


def test_the_architecture_page_states_the_order_without_exceptions():
    text = " ".join((ROOT / "docs" / "architecture.md").read_text().split())
    assert ("`contract` ← `config` ← `data`, `models` ← `user` ← `zoo` ← `train` ← `bench`, `distiller`, "
            "`testing` ← `cli`") in text
    assert "point upwards" not in text and "point upward" not in text


# -- imports at the top, unless a stated reason keeps one in a function --------------------------------
LAZY = re.compile(r"#\s*lazy:\s*\S")


def unexplained_lazy_imports() -> list[str]:
    """Function-level imports of a kdzoo module whose lines carry no ``# lazy: <reason>`` comment.

    A module's dependencies show at its top; an import stays inside a function only for a reason
    stated on its line (an optional dependency, start-up cost), never to hide a cycle (the graph
    above counts function-level imports, so a hidden cycle still fails).
    """
    bad = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines), str(path))
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in runtime_imports(func):
                if isinstance(node, ast.ImportFrom):
                    internal = bool(node.level) or (node.module or "").split(".")[0] == "kdzoo"
                else:
                    internal = any(a.name.split(".")[0] == "kdzoo" for a in node.names)
                text = lines[node.lineno - 1: node.end_lineno]
                if internal and not any(LAZY.search(line) for line in text):
                    bad.append(f"{name}:{node.lineno}: {text[0].strip()}")
    return sorted(set(bad))


def test_kdzoo_imports_are_at_the_top_unless_a_reason_is_stated():
    assert unexplained_lazy_imports() == []


def _copy(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "kdzoo"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PKG", copy)
    return copy


def test_an_upward_import_planted_in_a_copy_is_caught(tmp_path, monkeypatch):
    memory = _copy(tmp_path, monkeypatch) / "data" / "memory.py"
    memory.write_text(memory.read_text() + "\n\ndef _planted():\n    from ..bench.metrics import evaluate  # lazy: x\n")
    assert upward_imports(import_graph()) == {("kdzoo.data.memory", "kdzoo.bench"),
                                              ("kdzoo.data.memory", "kdzoo.bench.metrics")}


def test_an_unexplained_lazy_import_planted_in_a_copy_is_caught(tmp_path, monkeypatch):
    stack = _copy(tmp_path, monkeypatch) / "zoo" / "stack.py"
    stack.write_text(stack.read_text() + "\n\ndef _planted():\n    from ..data import load_dataset\n\n\n"
                     "def _explained():\n    from ..data import make_splits  # lazy: start-up cost\n")
    assert [line.partition(": ")[2] for line in unexplained_lazy_imports()] == ["from ..data import load_dataset"]
    assert upward_imports(import_graph()) == set()
