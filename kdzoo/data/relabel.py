"""Task definitions: a dataset relabelled or restricted by a suffix of its spec, as data.

A dataset spec is ``NAME``, ``NAME:ARG`` or either followed by ``:TASK``::

    mnist5k:parity               even / odd digit
    mnist5k:mod3                 digit mod 3 (any ``modN``)
    mnist5k:ge5                  digit < 5 / >= 5 (any ``geN``)
    mnist5k:digits[0-4]          only classes 0..4 (also ``digits[5-9]``, ``digits[0,2,7]``)
    cifar10:classes[cat,dog]     only the named classes (integers and ``a-b`` are class indices)
    mnist5k:classmap=map.yaml    any class map from a file (see :func:`read_class_map`)
    imagefolder:/data/pets:classmap=pets.yaml

The task is recognised by its keyword, so the ARG of ``imagefolder:PATH`` stays free: the spec is
split at the first ``:`` that is followed by a complete task (a folder literally named like a task,
e.g. ``imagefolder:parity``, is written ``imagefolder:./parity``).

A task maps each class of the base dataset to a task class or drops it (its samples leave the
dataset). The base labels are kept, so :func:`kdzoo.data.make_splits` splits the *base* dataset
(stratified by base label) and then keeps the task's samples: every task of one base dataset sees
the same train/val/test partition of its images, and a teacher trained on ``mnist5k`` never saw a
test image of a student on ``mnist5k:mod3``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..contract.errors import ConfigError
from .. import safe_yaml

TASK_RE = re.compile(r"^(?P<data>.+?):(?P<task>parity|mod\d+|ge\d+|(?:digits|classes)\[[^\]]*\]|classmap=.+)$")
TASK_HELP = "parity, modN, geN, digits[0-4], classes[a,b], classmap=FILE"


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split ``DATASET[:TASK]`` into the dataset spec and the task (``None`` when there is none).

    Example:
        ``split_spec("imagefolder:/d:parity") == ("imagefolder:/d", "parity")``
    """
    m = TASK_RE.match(spec)
    return (m["data"], m["task"]) if m else (spec, None)


def read_class_map(path: str | Path, what: str = "class map") -> tuple[dict[str, str | None], list[str] | None]:
    """Read a class-map file (YAML or JSON): ``{source class: target class}``.

    Two layouts are accepted; class names are strings (YAML's ``0`` is read as ``"0"``); a source
    class mapped to ``null`` is dropped::

        {"0": even, "1": odd, ...}                       # target order: first appearance
        {classes: [even, odd], map: {"0": even, ...}}    # explicit target classes and order

    Returns:
        The mapping and the declared target classes (``None`` when not declared).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file {str(path)!r} does not exist")
    try:
        data = safe_yaml.load(p.read_text())
    except safe_yaml.StrictYAMLError as exc:
        raise ConfigError(f"{what} file {str(path)!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} file {str(path)!r} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    classes = None
    if isinstance(data, dict) and "map" in data:
        classes = data.get("classes")
        extra = set(data) - {"map", "classes"}
        if extra:
            raise ConfigError(f"{what} file {str(path)!r}: unknown keys {sorted(extra)} (valid: classes, map)")
        if classes is not None and not isinstance(classes, list):
            raise ConfigError(f"{what} file {str(path)!r}: 'classes' must be a list of class names")
        data = data["map"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{what} file {str(path)!r} must hold a non-empty mapping {{source class: target class}}")
    mapping = {str(k): None if v is None else str(v) for k, v in data.items()}
    return mapping, None if classes is None else [str(c) for c in classes]


def validate_class_map(mapping: dict[str, str | None], source: list[str], target: list[str] | None,
                       what: str = "class map") -> list[str]:
    """Check a class map against the source classes and return the target classes in order.

    Rules: every key is a source class; with declared ``target`` classes, every value is one of
    them and every target class is reached by at least one source class.

    Raises:
        ConfigError: naming the unknown or unreachable class and the valid ones.
    """
    unknown = [k for k in mapping if k not in source]
    if unknown:
        raise ConfigError(f"{what}: unknown source class {unknown[0]!r} (classes: {', '.join(source)})")
    reached = []
    for s in source:
        v = mapping.get(s)
        if v is not None and v not in reached:
            reached.append(v)
    if target is None:
        if not reached:
            raise ConfigError(f"{what}: maps every class to null; nothing is left")
        return reached
    stray = [v for v in reached if v not in target]
    if stray:
        raise ConfigError(f"{what}: target class {stray[0]!r} is not among the target classes {target}")
    missing = [c for c in target if c not in reached]
    if missing:
        raise ConfigError(f"{what}: target class {missing[0]!r} is reached by no source class; every target class "
                          f"needs at least one")
    return list(target)


def _select(items: str, classes: list[str]) -> list[str]:
    picked: list[int] = []
    for raw in (s.strip() for s in items.split(",")):
        if not raw:
            continue
        if re.fullmatch(r"\d+-\d+", raw):
            lo, hi = (int(v) for v in raw.split("-"))
            if lo > hi:
                raise ConfigError(f"task class range {raw!r} is empty (write low-high)")
            idx = list(range(lo, hi + 1))
        elif raw.isdigit():
            idx = [int(raw)]
        elif raw in classes:
            idx = [classes.index(raw)]
        else:
            raise ConfigError(f"task class {raw!r} is neither a class index nor a class name "
                              f"(classes: {', '.join(classes)})")
        bad = [i for i in idx if i >= len(classes)]
        if bad:
            raise ConfigError(f"task class index {bad[0]} out of range: the dataset has {len(classes)} classes "
                              f"(0..{len(classes) - 1})")
        picked += [i for i in idx if i not in picked]
    if len(picked) < 2:
        raise ConfigError(f"a class subset needs at least 2 classes, got {[classes[i] for i in picked]}")
    return [classes[i] for i in sorted(picked)]


def resolve_task(task: str, classes: list[str]) -> tuple[dict[str, str], list[str]]:
    """The class map of ``task`` over the base ``classes``.

    Returns:
        ``{base class: task class}`` for the kept base classes, and the task classes in order.
    """
    k = len(classes)
    if task == "parity":
        names = ["even", "odd"]
        return {c: names[i % 2] for i, c in enumerate(classes)}, names
    if m := re.fullmatch(r"mod(\d+)", task):
        n = int(m[1])
        if not 2 <= n <= k:
            raise ConfigError(f"task {task!r}: N must be in 2..{k} for a dataset with {k} classes")
        names = [f"{r} mod {n}" for r in range(n)]
        return {c: names[i % n] for i, c in enumerate(classes)}, names
    if m := re.fullmatch(r"ge(\d+)", task):
        n = int(m[1])
        if not 1 <= n < k:
            raise ConfigError(f"task {task!r}: N must be in 1..{k - 1} for a dataset with {k} classes")
        names = [f"<{n}", f">={n}"]
        return {c: names[int(i >= n)] for i, c in enumerate(classes)}, names
    if m := re.fullmatch(r"(?:digits|classes)\[([^\]]*)\]", task):
        kept = _select(m[1], classes)
        return {c: c for c in kept}, kept
    if task.startswith("classmap="):
        mapping, target = read_class_map(task.removeprefix("classmap="), "task class map")
        order = validate_class_map(mapping, classes, target, "task class map")
        return {s: t for s, t in mapping.items() if t is not None}, order
    raise ConfigError(f"unknown task {task!r} (valid: {TASK_HELP})")


def apply_task(bundle: Any, task: str) -> Any:
    """A copy of ``bundle`` relabelled (and restricted) by ``task``; base labels are kept for splits."""
    if bundle.task != "classification":
        raise ConfigError(f"task {task!r} needs classification data; {bundle.name!r} is {bundle.task}")
    mapping, names = resolve_task(task, list(bundle.classes))
    lut = torch.full((len(bundle.classes),), -1, dtype=torch.long)
    for i, c in enumerate(bundle.classes):
        if c in mapping:
            lut[i] = names.index(mapping[c])
    y = lut[bundle.y]
    keep = y >= 0
    index = keep.nonzero().squeeze(1)
    test_x, test_y = bundle.test_x, bundle.test_y
    if test_y is not None:
        ty = lut[test_y]
        test_keep = (ty >= 0).nonzero().squeeze(1)
        test_x = test_x[test_keep] if isinstance(test_x, torch.Tensor) else test_x.take(test_keep)
        test_y = ty[test_keep]
    kept_x = bundle.x[index] if isinstance(bundle.x, torch.Tensor) else bundle.x.take(index)  # files stay on disk
    return type(bundle)(
        bundle.x if bool(keep.all()) else kept_x, y[index], task=bundle.task, classes=names,
        test_x=test_x, test_y=test_y, name=bundle.name, base_classes=list(bundle.classes), class_map=mapping,
        base_y=bundle.y.clone(), base_index=index,
    )


__all__ = ["TASK_HELP", "apply_task", "read_class_map", "resolve_task", "split_spec", "validate_class_map"]
