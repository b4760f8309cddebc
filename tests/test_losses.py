"""Loss math: the golden loss terms of every in-repo strategy stay bit-identical."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def _golden_module():
    spec = importlib.util.spec_from_file_location("make_loss_terms", GOLDEN_DIR / "make_loss_terms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _golden_module()
GOLDEN = json.loads(golden.GOLDEN.read_text())["cases"]


def test_every_installed_strategy_has_golden_terms(zoo):
    missing = sorted(set(zoo.collect().strategies) - {case["strategy"] for case in GOLDEN.values()})
    assert not missing, f"no golden loss terms for {missing}: run python tests/golden/make_loss_terms.py"


@pytest.mark.parametrize("case_id", sorted(GOLDEN))
def test_loss_terms_are_bit_identical_to_golden(case_id, zoo):
    case = GOLDEN[case_id]
    got = golden.loss_terms(case["strategy"], case["params"], case["models"], zoo)
    assert got == case["steps"], f"{case_id}: loss terms moved\n got  {got}\n want {case['steps']}"
