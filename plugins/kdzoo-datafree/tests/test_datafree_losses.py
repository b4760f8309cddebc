"""Each loss of the data-free family against a hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdzoo.losses import (activation_loss, adi_competition_loss, bn_statistic_loss, image_l2_loss,
                          information_entropy_loss, l1_discrepancy, one_hot_loss, tv_loss)
from kdzoo_datafree.bn_prior import BNStatisticsPrior


def softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_one_hot_loss_is_ce_to_the_teachers_own_argmax():
    logits = [[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
    expected = (-math.log(softmax(logits[0])[0]) - math.log(softmax(logits[1])[2])) / 2
    assert one_hot_loss(torch.tensor(logits)).item() == pytest.approx(expected, rel=1e-6)


def test_activation_loss_is_minus_mean_abs():
    assert activation_loss(torch.tensor([[1.0, -2.0], [3.0, 0.0]])).item() == pytest.approx(-1.5)


def test_information_entropy_loss_uses_log10_of_the_batch_mean_softmax():
    logits = [[1.0, 0.0], [0.0, 2.0]]
    p0, p1 = softmax(logits[0]), softmax(logits[1])
    mean = [(a + b) / 2 for a, b in zip(p0, p1)]
    expected = sum(p * math.log10(p) for p in mean)
    got = information_entropy_loss(torch.tensor(logits))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # minimal (= -log10 K) when the classes are balanced, whatever each sample says
    assert information_entropy_loss(torch.tensor([[5.0, 0.0], [0.0, 5.0]])).item() == pytest.approx(-math.log10(2))


def test_l1_discrepancy_is_mean_absolute_error():
    s, t = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([[0.0, 2.5], [1.0, 1.0]])
    assert l1_discrepancy(s, t).item() == pytest.approx((1 + 0.5 + 1 + 2) / 4)


def test_bn_statistic_loss_is_two_l2_norms_of_mean_and_biased_variance():
    # channel 0 values 1, 3, 5, 7 ; channel 1 values 0, 0, 2, 2   ([B=2, C=2, 1, 2])
    x = torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]], [[[5.0, 7.0]], [[2.0, 2.0]]]])
    rm, rv = torch.tensor([4.0, 0.0]), torch.tensor([1.0, 1.0])
    mean, var = [4.0, 1.0], [5.0, 1.0]  # biased variances: (9+1+1+9)/4, (1+1+1+1)/4
    expected = math.hypot(mean[0] - 4, mean[1] - 0) + math.hypot(var[0] - 1, var[1] - 1)
    assert bn_statistic_loss(x, rm, rv).item() == pytest.approx(expected)


def test_bn_prior_is_zero_when_batch_statistics_equal_running_ones_and_counts_every_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    x = torch.randn(8, 1, 4, 4)
    net.eval()  # running statistics are targets only: they never update here
    with torch.no_grad():
        for bn, upto in ((net[1], 1), (net[4], 4)):
            h = net[:upto](x)
            bn.running_mean.copy_(h.mean((0, 2, 3)))
            bn.running_var.copy_(h.var((0, 2, 3), unbiased=False))
    prior = BNStatisticsPrior(net, "test")
    assert len(prior.layers) == 2
    with prior:
        net(x)
    assert prior.loss().item() == pytest.approx(0.0, abs=1e-4)
    with prior:
        net(x + 1.0)
    assert prior.loss().item() > 0.1
    assert not net[1]._forward_hooks  # hooks are gone after the block


def test_tv_loss_by_hand():
    x = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])
    d_w = math.hypot(1 - 2, 4 - 8)          # horizontal neighbours
    d_h = math.hypot(1 - 4, 2 - 8)          # vertical neighbours
    d_diag1 = abs(4 - 2)                    # x[1, 0] - x[0, 1]
    d_diag2 = abs(1 - 8)                    # x[0, 0] - x[1, 1]
    assert tv_loss(x).item() == pytest.approx(d_w + d_h + d_diag1 + d_diag2)


def test_image_l2_loss_is_the_batch_norm():
    x = torch.tensor([[[[3.0]]], [[[4.0]]]])
    assert image_l2_loss(x).item() == pytest.approx(5.0)


def test_competition_loss_by_hand():
    s, t, T = [1.0, 0.0], [0.0, 3.0], 3.0
    p, q = softmax([v / T for v in s]), softmax([v / T for v in t])
    m = [min(max((a + b) / 2, 0.01), 0.99) for a, b in zip(p, q)]
    p, q = [min(max(v, 0.01), 0.99) for v in p], [min(max(v, 0.01), 0.99) for v in q]
    js = 0.5 * sum(mi * math.log(mi / pi) for mi, pi in zip(m, p)) + 0.5 * sum(mi * math.log(mi / qi) for mi, qi in zip(m, q))
    got = adi_competition_loss(torch.tensor([s]), torch.tensor([t]), T)
    assert got.item() == pytest.approx(1 - js, rel=1e-5)
