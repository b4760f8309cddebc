"""Which core loss functions a strategy's source reaches, and one hash of their source (a cell key's loss part).

A bench cell's key holds, per stack member, a hash of the code in :mod:`kdzoo.losses` that the
member can call (:func:`kdzoo.train.effective.member_code`), so editing DKD's loss re-runs the
cells that hold ``dkd``, not every cell. The reach is read statically from the source, as the rest
of a cell's code identity is:

* the roots are the names a strategy's source files (:func:`kdzoo.train.effective.strategy_sources`)
  take from the package: ``from kdzoo.losses import kd_loss``, ``from kdzoo.losses.logit import ...``,
  ``losses.kd_loss`` or ``losses.logit.kd_loss`` after ``from kdzoo import losses`` or
  ``import kdzoo.losses as losses``, ``kdzoo.losses.kd_loss`` after any ``import kdzoo...`` that binds
  ``kdzoo`` (``import kdzoo.plugin`` does too), and relative imports of the same in kdzoo's own modules;
* a name of the package resolves through its ``__init__`` to the module-level definition it
  re-exports (``kd_loss`` -> ``logit.kd_loss``);
* a definition reaches every module-level name of the package its body uses (a helper, a constant,
  a function imported from a sibling module by any of the spellings above), transitively.

The hash covers the source of every reached definition and the preamble of the modules that hold
them: their imports (what ``F`` or ``torch`` is) and any other top-level statement that binds no name.
A module's docstring, and edits of definitions the member does not reach, leave the hash alone.

What the static reading cannot follow, it takes whole: ``from kdzoo.losses import *``, the package
object used other than as ``losses.NAME`` (``getattr(losses, name)``, passed to a function), or a
name that resolves to no definition (a root, or a name a reached definition uses, e.g. one bound
inside a top-level ``try``), reaches every definition.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "kdzoo.losses"
FOLDER = Path(__file__).resolve().parent.parent / "losses"
_EVERYTHING = "*"


def _read_source(path: Path) -> str:
    """The text of a source file (one place, so a test can edit what the reach reads)."""
    return path.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=256)
def _parse(text: str, filename: str) -> ast.Module:
    return ast.parse(text, filename)


def _absolute(module: str | None, level: int, package: str) -> str:
    """The absolute name of an ``ImportFrom``'s module, relative ones resolved against ``package``."""
    if not level:
        return module or ""
    parts = package.split(".")
    base = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(base + ([module] if module else []))


def _submodules() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.py") if p.stem != "__init__")


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _bind_import(node: ast.Import, modules: dict[str, str], roots: set[str]) -> None:
    """Record what an ``import`` binds: a losses module under its ``as`` name, or the ``kdzoo`` package.

    ``import kdzoo.plugin`` binds ``kdzoo`` as ``import kdzoo`` does, so ``kdzoo.losses.kd_loss`` after it
    is a use of the package.
    """
    for alias in node.names:
        if alias.asname is None:
            if alias.name.split(".")[0] == "kdzoo":
                roots.add("kdzoo")
        elif alias.name == "kdzoo":
            roots.add(alias.asname)
        elif alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
            modules[alias.asname] = alias.name[len(PACKAGE) + 1:] or "__init__"


def _from_losses(source: str, names: list[ast.alias], submodules: list[str]):
    """What a ``from SOURCE import ...`` takes from the package, one ``(kind, local name, target)`` per name.

    ``kind`` is ``"module"`` for a module of the package (the target its name in the package,
    ``"__init__"`` for the package itself) and ``"name"`` for one of its names (the target
    ``module.name``, or ``"*"`` for a star import).
    """
    for alias in names:
        local = alias.asname or alias.name
        if source == "kdzoo" and alias.name == "losses":
            yield "module", local, "__init__"
        elif source == PACKAGE and alias.name in submodules:
            yield "module", local, alias.name
        elif source == PACKAGE or source.startswith(PACKAGE + "."):
            module = source[len(PACKAGE) + 1:] or "__init__"
            yield "name", local, _EVERYTHING if alias.name == "*" else f"{module}.{alias.name}"


def _member(node: ast.AST, parents: dict[int, ast.AST], module: str) -> str:
    """The name of the package that ``node``, an expression for losses module ``module``, is used for.

    ``losses.kd_loss`` -> ``__init__.kd_loss``, ``losses.logit.kd_loss`` -> ``logit.kd_loss``; the
    module used other than by an attribute (``getattr(losses, name)``, passed on) -> ``"*"``.
    """
    parent = parents.get(id(node))
    if not (isinstance(parent, ast.Attribute) and parent.value is node):
        return _EVERYTHING
    if module == "__init__" and parent.attr in _submodules():
        return _member(parent, parents, parent.attr)
    return f"{module}.{parent.attr}"


def _uses_of(node: ast.Name, parents: dict[int, ast.AST], modules: dict[str, str], roots: set[str]) -> set[str]:
    """The names of the package a use of a module alias (``losses``) or of the ``kdzoo`` package stands for."""
    if node.id in modules:
        return {_member(node, parents, modules[node.id])}
    if node.id in roots:
        parent = parents.get(id(node))
        if not (isinstance(parent, ast.Attribute) and parent.value is node):
            return {_EVERYTHING}  # ``getattr(kdzoo, name)``: may be the losses package
        return {_member(parent, parents, "__init__")} if parent.attr == "losses" else set()
    return set()


class _Module:
    """One module of the losses package: its definitions, their sources, and the names each one uses."""

    def __init__(self, name: str, text: str):
        self.name = name
        tree = _parse(text, f"{PACKAGE}.{name}")
        lines = text.splitlines()
        submodules = _submodules()
        # what every definition of the module runs under: its top-level statements that define no
        # name (imports, a top-level ``if``/``try``), the docstring left out
        self.preamble: list[str] = []
        self.local: dict[str, str] = {}  # a name bound at the top -> the definition it is ("logit.kd_loss")
        self.modules: dict[str, str] = {}  # a name bound to a module of the package ("logit", "__init__")
        self.roots: set[str] = set()  # names bound to the ``kdzoo`` package (``import kdzoo.losses``)
        self.star = False  # ``from .logit import *``: its definitions may use any name of the package
        self.defs: dict[str, list[ast.AST]] = {}  # a name may be bound more than once (``x = ...; x += ...``)
        self.sources: dict[str, list[str]] = {}
        for i, node in enumerate(tree.body):
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            segment = "\n".join(lines[start - 1:node.end_lineno])
            names = _bound_names(node)
            if not names:
                self.preamble.append(segment)
            if isinstance(node, ast.Import):
                _bind_import(node, self.modules, self.roots)
                continue
            if isinstance(node, ast.ImportFrom):
                source = _absolute(node.module, node.level, PACKAGE)  # every module sits at the top
                for kind, local, target in _from_losses(source, node.names, submodules):
                    if kind == "module":
                        self.modules[local] = target
                    elif target == _EVERYTHING:
                        self.star = True
                    else:
                        self.local[local] = target
                continue
            for bound in names:
                self.local[bound] = f"{name}.{bound}"
                self.defs.setdefault(bound, []).append(node)
                self.sources.setdefault(bound, []).append(segment)

    def uses(self, bound: str) -> set[str]:
        """The package names one of this module's definitions refers to (``"*"``: it cannot tell which)."""
        found: set[str] = {_EVERYTHING} if self.star else set()
        for definition in self.defs[bound]:
            parents = _parents(definition)
            for node in ast.walk(definition):
                if not isinstance(node, ast.Name):
                    continue
                if node.id in self.local:
                    if node.id != bound:
                        found.add(self.local[node.id])
                else:
                    found |= _uses_of(node, parents, self.modules, self.roots)
        return found


def _bound_names(node: ast.stmt) -> list[str]:
    """The module-level names a statement defines (functions, classes, assignments)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, (ast.AnnAssign, ast.AugAssign)) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _package() -> dict[str, _Module]:
    return {path.stem: _Module(path.stem, _read_source(path)) for path in sorted(FOLDER.glob("*.py"))}


def _resolve(package: dict[str, _Module], module: str, name: str, depth: int = 0) -> str | None:
    """The definition ``module.name`` stands for, following re-exports (``__init__.kd_loss`` -> ``logit.kd_loss``)."""
    mod = package.get(module)
    if mod is None or depth > len(package):
        return None
    if name in mod.defs:
        return f"{module}.{name}"
    target = mod.local.get(name)
    if target is None:
        return None
    target_module, _, target_name = target.partition(".")
    return _resolve(package, target_module, target_name, depth + 1)


def reached_names(files: list[Path], core: Path | None = None) -> set[str]:
    """The names of :mod:`kdzoo.losses` (``module.name`` or ``__init__.name``) that ``files`` use.

    Args:
        files: source files of one strategy; files that are not Python are skipped.
        core: the folder of the ``kdzoo`` package, to resolve its own modules' relative imports
            (plugin files import ``kdzoo.losses`` absolutely).

    Returns:
        The names, or a set holding ``"*"`` when a file takes the package whole.
    """
    core = core or FOLDER.parent
    found: set[str] = set()
    for file in files:
        if file.suffix != ".py":
            continue
        try:
            package = ".".join(("kdzoo",) + file.resolve().relative_to(core.resolve()).parent.parts)
        except ValueError:
            package = ""
        found |= _names_in(_parse(_read_source(file), str(file)), package)
    return found


def _names_in(tree: ast.Module, package: str) -> set[str]:
    found: set[str] = set()
    aliases: dict[str, str] = {}  # a local name -> the losses module it is ("__init__", "logit")
    roots: set[str] = set()  # local names bound to the top-level ``kdzoo`` package
    submodules = _submodules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            _bind_import(node, aliases, roots)
        elif isinstance(node, ast.ImportFrom):
            # a plugin's relative import stays in its own package; kdzoo's own modules may say ``..losses``
            source = "" if node.level and not package else _absolute(node.module, node.level, package)
            for kind, local, target in _from_losses(source, node.names, submodules):
                if kind == "module":
                    aliases[local] = target
                else:
                    found.add(target)
    if not aliases and not roots:
        return found
    parents = _parents(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found |= _uses_of(node, parents, aliases, roots)
    return found


def reached_definitions(names: set[str], package: dict[str, _Module] | None = None) -> dict[str, str]:
    """The package definitions ``names`` reach, transitively, each as ``module.name`` -> its source.

    A name that resolves to no definition (a name the package lacks, one bound only inside a
    top-level ``try``/``if``), given or used by a reached definition, reaches every definition: the
    reading cannot say what it is, so it takes the whole package rather than a part that may miss it.
    """
    package = package if package is not None else _package()
    everything = [f"{m}.{d}" for m, mod in package.items() for d in mod.defs]

    def resolve(name: str) -> str | None:
        return None if name == _EVERYTHING else _resolve(package, *name.split(".", 1))

    roots = [resolve(n) for n in sorted(names)]
    whole = None in roots
    todo = list(everything) if whole else list(roots)
    seen: dict[str, str] = {}
    while todo:
        qualified = todo.pop()
        if qualified in seen:
            continue
        module, _, name = qualified.partition(".")
        mod = package[module]
        seen[qualified] = "\n".join(mod.sources[name])
        for used in mod.uses(name):
            resolved = resolve(used)
            if resolved is not None:
                todo.append(resolved)
            elif not whole:  # a name the reading cannot follow: the whole package, as for a root
                whole = True
                todo.extend(everything)
    return seen


def losses_reached_hash(files: list[Path]) -> str | None:
    """One hash of the loss code ``files`` reach (:func:`reached_definitions`), ``None`` if they reach none.

    The hash covers each reached definition's source under its qualified name, and the preamble of
    the modules that hold them (their imports), so it moves when that code moves, and only then.
    """
    package = _package()
    reached = reached_definitions(reached_names(files), package)
    if not reached:
        return None
    digest = hashlib.sha256()
    for module in sorted({q.partition(".")[0] for q in reached}):
        digest.update(f"{module}: preamble\n".encode())
        digest.update("\n".join(package[module].preamble).encode())
    for qualified in sorted(reached):
        digest.update(f"\n{qualified}\n".encode())
        digest.update(reached[qualified].encode())
    return digest.hexdigest()[:16]


__all__ = ["losses_reached_hash", "reached_definitions", "reached_names"]
