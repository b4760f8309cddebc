"""Every installed strategy passes the public conformance check (as timm tests every model)."""

import dataclasses

import pytest

from kdzoo.zoo.plugins import load_zoo
from kdzoo.testing import check_strategy

STRATEGIES = sorted(load_zoo().collect().strategies)


def contract_params(name, zoo):
    """Init strategies refuse model pairs that do not map (their own tests check that); here only the
    training contract is checked, so a partial init is accepted."""
    fields = {f.name for f in dataclasses.fields(zoo.strategy(name).obj.Config)}
    return {"allow_partial": True} if "allow_partial" in fields else None


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_conforms(name, zoo):
    logged = check_strategy(name, contract_params(name, zoo), zoo=zoo)
    assert "loss" in logged


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n not in ("ce", "regression-kd")])
def test_strategy_conforms_across_timm_families(name, zoo):
    from kdzoo.config import ModelConfig

    check_strategy(name, contract_params(name, zoo), zoo=zoo, teacher=ModelConfig("test_resnet"), student=ModelConfig("test_vit", {"img_size": 16, "patch_size": 4}))
