"""Each feature loss against a hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdzoo.losses import at_loss, attention_map, hint_loss, pool_to_common_size, pooled_feature_loss
from kdzoo_feature.layers import as_map


def normalise(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def test_attention_map_is_normalised_channel_mean_of_abs_power_by_hand():
    # one sample, 2 channels, 1x2 map: channel values (1, -2) and (3, 0)
    f = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.0]]]])
    expected = normalise([(1 + 9) / 2, (4 + 0) / 2])  # mean_c |A|^2 at each position, then L2-normalised
    assert attention_map(f, 2.0)[0].tolist() == pytest.approx(expected)
    expected_p1 = normalise([(1 + 3) / 2, (2 + 0) / 2])
    assert attention_map(f, 1.0)[0].tolist() == pytest.approx(expected_p1)


def test_at_loss_is_mean_squared_difference_of_maps_by_hand():
    s = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])  # [1, 1, 2, 2]
    t = torch.tensor([[[[2.0, 0.0], [1.0, 1.0]]], ]).repeat(1, 3, 1, 1)  # 3 equal channels: same map as 1 channel
    qs = normalise([1.0, 4.0, 0.0, 1.0])
    qt = normalise([4.0, 0.0, 1.0, 1.0])
    expected = sum((a - b) ** 2 for a, b in zip(qs, qt)) / 4
    assert at_loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_at_loss_pools_the_larger_map_and_skips_the_teacher_gradient():
    s = torch.rand(2, 3, 2, 2, requires_grad=True)
    t = torch.rand(2, 5, 4, 4, requires_grad=True)
    pooled = torch.nn.functional.avg_pool2d(t, 2)
    assert at_loss(s, t).item() == pytest.approx(at_loss(s, pooled).item(), rel=1e-5)
    at_loss(s, t).backward()
    assert s.grad is not None and t.grad is None
    assert at_loss(t.detach(), t.detach()).item() == pytest.approx(0.0, abs=1e-9)


def test_hint_loss_through_a_1x1_regressor_by_hand():
    guided = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, 2, 1, 2]
    reg = nn.Conv2d(2, 1, 1)
    with torch.no_grad():
        reg.weight.copy_(torch.tensor([[[[0.5]], [[-1.0]]]]))
        reg.bias.fill_(1.0)
    hint = torch.tensor([[[[0.0, 1.0]]]])
    # regressed at each position: 0.5 * c0 - c1 + 1 -> (0.5 - 3 + 1, 1 - 4 + 1) = (-1.5, -2)
    expected = ((-1.5 - 0.0) ** 2 + (-2.0 - 1.0) ** 2) / 2
    assert hint_loss(guided, hint, reg).item() == pytest.approx(expected)


def test_hint_loss_pools_to_the_smaller_resolution():
    r = torch.arange(16.0).view(1, 1, 4, 4)
    h = torch.zeros(1, 1, 2, 2)
    pooled = [[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]]
    expected = sum(v * v for row in pooled for v in row) / 4
    assert hint_loss(r, h).item() == pytest.approx(expected)


def test_pooled_feature_loss_mse_and_cosine_by_hand():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    mse = ((1 - 0) ** 2 + (0 - 2) ** 2 + (1 - 2) ** 2 + (1 - 2) ** 2) / 4
    assert pooled_feature_loss(s, t, "mse").item() == pytest.approx(mse)
    cosine = ((1 - 0.0) + (1 - 1.0)) / 2  # orthogonal, then parallel
    assert pooled_feature_loss(s, t, "cosine").item() == pytest.approx(cosine, abs=1e-6)


def test_tokens_become_a_grid_without_the_class_token():
    b, c = 2, 3
    grid = torch.randn(b, c, 2, 2)
    tokens = torch.cat([torch.full((b, 1, c), 99.0), grid.flatten(2).transpose(1, 2)], dim=1)  # [B, 1 + 4, C]
    assert torch.equal(as_map(tokens), grid)
    v = torch.randn(b, 7)
    assert as_map(v) is v
    a, bb = pool_to_common_size(torch.randn(1, 2, 7, 7), torch.randn(1, 5, 4, 4))
    assert a.shape == (1, 2, 4, 4) and bb.shape == (1, 5, 4, 4)
