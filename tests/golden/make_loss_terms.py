"""Golden loss terms: every in-repo strategy's logged terms on tiny models, fixed data and seeds.

``python tests/golden/make_loss_terms.py`` rewrites ``tests/golden/loss_terms.json``. The file was
generated at commit b53ddcc, before the loss math moved into :mod:`kdzoo.losses`;
``tests/test_losses.py`` recomputes every case and compares the values within a stated float32
tolerance (other CPUs round differently in the last bits; ``KDZOO_GOLDEN_STRICT=1`` compares bit for
bit, for a refactor checked on one machine), so a refactor of the losses cannot change a number
unnoticed. Regenerate only for a change that is meant to move the numbers, and say so in the commit.

Each case builds its strategy with :func:`kdzoo.testing.tiny_run` (the harness of
``check_strategy``: seed 0, batch 16, two optimiser steps on CPU, one thread) and records the
terms the trainer logs at both steps: every named term, ``label`` and the weighted ``loss``.
Beside each strategy's default parameters, variants reach the branches the defaults skip.

``python tests/golden/make_loss_terms.py --add NAME [NAME ...]`` appends the default case of newly
installed strategies and leaves every existing case byte-for-byte as it was (new strategies are
added this way; a full rewrite is only for a change meant to move numbers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

GOLDEN = Path(__file__).with_name("loss_terms.json")
BASE_COMMIT = "b53ddcc"
STEPS = 2
TIMM_PAIR = {"teacher": ("test_resnet", {}), "student": ("test_vit", {"img_size": 16, "patch_size": 4})}

# (case id, strategy, params or None for the defaults, model pair or None for the lenet5 pair)
VARIANTS: list[tuple[str, str, dict[str, Any] | None, dict | None]] = [
    ("pooled-feature/cosine", "pooled-feature", {"loss": "cosine", "projector": "always"}, None),
    ("projected-feature/inverted", "projected-feature", {"projection": "inverted"}, None),
    ("rkd/feature-map", "rkd", {"layer": "-1"}, None),
    ("sp/feature-map", "sp", {"layer": "-1"}, None),
    ("fitnet/stage2-ce", "fitnet", {"stage2": "ce"}, None),
    ("refilled/semi-supervised", "refilled", {"unlabelled": True, "embedding_only": False, "local": False}, None),
    ("dafl/bn-prior", "dafl", {"ngf": 8, "nz": 16, "bn": 5.0}, None),
    ("dfad/bn-prior", "dfad", {"ngf": 8, "nz": 16, "bn": 1.0, "g_every": 1}, None),
    ("deep-inversion/tv-l2-adi", "deep-inversion",
     {"batches": 2, "synth_batch": 16, "iters": 3, "tv": 0.01, "l2": 0.001, "adi": 1.0}, None),
    ("at/timm", "at", None, TIMM_PAIR),
    ("fitnet/timm", "fitnet", None, TIMM_PAIR),
]


def default_params(name: str, zoo) -> dict[str, Any] | None:
    """The strategy's smoke parameters; init strategies accept a partial map (as the conformance test)."""
    fields = {f.name for f in dataclasses.fields(zoo.strategy(name).obj.Config)}
    return {"allow_partial": True} if "allow_partial" in fields else None


def cases(zoo) -> list[tuple[str, str, dict[str, Any] | None, dict | None]]:
    """Every installed strategy with its defaults, then the variants."""
    names = sorted(zoo.collect().strategies)
    return [(name, name, default_params(name, zoo), None) for name in names] + VARIANTS


def loss_terms(name: str, params: dict[str, Any] | None, models: dict | None, zoo) -> list[dict[str, float]]:
    """The logged terms of each of ``STEPS`` optimiser steps of one case (one CPU thread)."""
    from kdzoo.config import ModelConfig
    from kdzoo.testing import tiny_run

    pair = {role: ModelConfig(*spec) for role, spec in (models or {}).items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reductions may split differently across threads
    try:
        run = tiny_run(name, params, zoo=zoo, **pair)
        return [run.trainer.train_step(step) for step in range(STEPS)]
    finally:
        torch.set_num_threads(threads)


def add(names: list[str], zoo) -> int:
    """Append the default case of each new strategy in ``names``; existing cases are not recomputed."""
    data = json.loads(GOLDEN.read_text())
    for name in names:
        if name in data["cases"]:
            print(f"golden case {name!r} exists already; --add only appends new strategies", file=sys.stderr)
            return 2
        params = default_params(name, zoo)
        steps = loss_terms(name, params, None, zoo)
        data["cases"][name] = {"strategy": name, "params": params, "models": None, "steps": steps}
        print(name, steps[-1].get("loss"), file=sys.stderr)
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return 0


def main() -> int:
    from kdzoo.zoo.plugins import load_zoo

    # the trainer's teacher-output cache must start empty and stay out of the user's cache
    os.environ["KDZOO_CACHE"] = tempfile.mkdtemp(prefix="kdzoo-golden-")
    zoo = load_zoo()
    if sys.argv[1:2] == ["--add"]:
        return add(sys.argv[2:], zoo)
    out: dict[str, Any] = {
        "about": f"generated by tests/golden/make_loss_terms.py at commit {BASE_COMMIT} (before kdzoo.losses); "
                 "logged loss terms per optimiser step; compared within a stated float32 tolerance (bit for bit with KDZOO_GOLDEN_STRICT=1) by tests/test_losses.py",
        "torch": torch.__version__,
        "cases": {},
    }
    for case_id, name, params, models in cases(zoo):
        steps = loss_terms(name, params, models, zoo)
        out["cases"][case_id] = {"strategy": name, "params": params, "models": models, "steps": steps}
        print(case_id, steps[-1].get("loss"), file=sys.stderr)
    GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
