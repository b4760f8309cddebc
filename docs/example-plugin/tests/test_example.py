"""The example plugin: kdzoo's conformance check, and its loss term against a hand computation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kdzoo.plugin import Batch, ConfigError, Outputs
from kdzoo.testing import check_strategy
from kdzoo_example import LogitMSE, LogitMSEConfig


def logit_mse_term(student_logits, teacher_logits):
    """The strategy's own term for one batch, as the trainer asks for it."""
    strategy = LogitMSE(LogitMSEConfig(), ctx=None)
    batch = Batch(x=None, y=None, labelled=None, index=None)
    return strategy(batch, Outputs(logits=student_logits), Outputs(logits=teacher_logits), None)["logit-mse"]


def test_conformance():
    logged = check_strategy("logit-mse")
    assert "logit-mse" in logged and "label" in logged


def test_paper_preset_trains_on_the_teacher_only():
    logged = check_strategy("logit-mse", preset="paper")
    assert "label" not in logged  # alpha = 1: the hard-label weight is 0


def test_loss_by_hand():
    s = [[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]]
    t = [[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]]
    # squared differences: 1 + 4 + 0.25 and 1 + 4 + 9, averaged over 2 x 3 entries
    expected = (1 + 4 + 0.25 + 1 + 4 + 9) / 6
    assert logit_mse_term(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected, rel=1e-6)


def test_no_gradient_reaches_the_teacher():
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    logit_mse_term(s, t).backward()
    assert s.grad is not None and t.grad is None


def test_alpha_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match=r"strategy\.logit-mse\.alpha must be in \[0, 1\], got 1\.5"):
        check_strategy("logit-mse", {"alpha": 1.5})


def test_every_parameter_is_documented():
    assert all(f.metadata.get("help") for f in dataclasses.fields(LogitMSEConfig))
