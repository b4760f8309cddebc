"""Every installed strategy passes the public conformance check (as timm tests every model)."""

import pytest

from kdzoo.plugins import load_zoo
from kdzoo.testing import check_strategy

STRATEGIES = sorted(load_zoo().collect().strategies)


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_conforms(name, zoo):
    logged = check_strategy(name, zoo=zoo)
    assert "loss" in logged


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n not in ("ce", "regression-kd")])
def test_strategy_conforms_across_timm_families(name, zoo):
    from kdzoo.config import ModelConfig

    check_strategy(name, zoo=zoo, teacher=ModelConfig("test_resnet"), student=ModelConfig("test_vit", {"img_size": 16, "patch_size": 4}))
