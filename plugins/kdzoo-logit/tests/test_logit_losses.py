"""Each logit loss against a hand computation on tiny tensors."""

import math

import pytest
import torch

from kdzoo.testing import check_strategy
from kdzoo.losses import dist_loss, dist_terms, dkd_loss, dkd_terms, kd_loss, standardize_logits


def softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_kd_is_batchmean_kl_times_t_squared_by_hand():
    s = [[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]]
    t = [[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]]
    T = 2.0
    expected = 0.0
    for si, ti in zip(s, t):
        ps, pt = softmax([x / T for x in si]), softmax([x / T for x in ti])
        expected += sum(b * math.log(b / a) for a, b in zip(ps, pt))
    expected = expected / 2 * T * T  # batchmean over 2 samples, times T^2
    got = kd_loss(torch.tensor(s), torch.tensor(t), T)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_of_identical_logits_is_zero_and_gradient_skips_teacher():
    s = torch.randn(4, 5, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    loss = kd_loss(s, t, 3.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and t.grad is None


def test_dkd_terms_by_hand():
    s, t, y, T = [1.0, 2.0, 0.5], [2.0, 0.0, 1.0], 0, 1.0
    ps, pt = softmax(s), softmax(t)
    bs, bt = [ps[0], 1 - ps[0]], [pt[0], 1 - pt[0]]
    tckd = sum(b * math.log(b / a) for a, b in zip(bs, bt))
    qs, qt = softmax(s[1:]), softmax(t[1:])
    nckd = sum(b * math.log(b / a) for a, b in zip(qs, qt))
    got_t, got_n = dkd_terms(torch.tensor([s]), torch.tensor([t]), torch.tensor([y]), T)
    assert got_t.item() == pytest.approx(tckd, rel=1e-4)
    assert got_n.item() == pytest.approx(nckd, rel=1e-4)


def test_dkd_plus_kd_sum_decomposition():
    """KD = TCKD + (1 - p_t^target) NCKD (the DKD paper's Eq. 2) per sample."""
    torch.manual_seed(0)
    s, t, y = torch.randn(1, 6), torch.randn(1, 6), torch.tensor([2])
    tckd, nckd = dkd_terms(s, t, y, 1.0)
    kd = kd_loss(s, t, 1.0)
    pt = t.softmax(-1)[0, 2]
    assert kd.item() == pytest.approx((tckd + (1 - pt) * nckd).item(), rel=1e-4)


def zscore(v):
    """Logit standardization of one sample (arXiv:2403.01427): (z - mean) / (sample std + 1e-7)."""
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return [(x - m) / (sd + 1e-7) for x in v]


S_LS = [[1.0, 2.0, 0.5, -1.0], [0.0, -3.0, 1.0, 2.0]]
T_LS = [[8.0, 0.0, 1.0, -2.0], [1.0, 1.0, -6.0, 0.5]]


def test_standardize_logits_by_hand():
    got = standardize_logits(torch.tensor(S_LS, dtype=torch.float64))
    for row, want in zip(got.tolist(), [zscore(r) for r in S_LS]):
        assert row == pytest.approx(want, rel=1e-9)


def test_kd_with_logit_standardization_by_hand():
    """KD on z-scored logits at base temperature T: T^2 * batch mean of KL(softmax(Z(t)/T) || softmax(Z(s)/T))."""
    T = 2.0
    expected = 0.0
    for si, ti in zip(S_LS, T_LS):
        ps, pt = softmax([x / T for x in zscore(si)]), softmax([x / T for x in zscore(ti)])
        expected += sum(b * math.log(b / a) for a, b in zip(ps, pt))
    expected = expected / len(S_LS) * T * T
    got = kd_loss(torch.tensor(S_LS), torch.tensor(T_LS), T, standardize=True)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert kd_loss(torch.tensor(S_LS), torch.tensor(T_LS), T).item() != pytest.approx(expected, rel=1e-3)


def test_dkd_with_logit_standardization_by_hand():
    """DKD's TCKD and NCKD on z-scored logits (the standardization composes with DKD)."""
    T, y = 2.0, [0, 2]
    tckd = nckd = 0.0
    for si, ti, yi in zip(S_LS, T_LS, y):
        zs, zt = [x / T for x in zscore(si)], [x / T for x in zscore(ti)]
        ps, pt = softmax(zs), softmax(zt)
        bs, bt = [ps[yi], 1 - ps[yi]], [pt[yi], 1 - pt[yi]]
        tckd += sum(b * math.log(b / a) for a, b in zip(bs, bt))
        qs = softmax([v for k, v in enumerate(zs) if k != yi])
        qt = softmax([v for k, v in enumerate(zt) if k != yi])
        nckd += sum(b * math.log(b / a) for a, b in zip(qs, qt))
    tckd, nckd = tckd / 2 * T * T, nckd / 2 * T * T
    got_t, got_n = dkd_terms(torch.tensor(S_LS), torch.tensor(T_LS), torch.tensor(y), T, standardize=True)
    assert got_t.item() == pytest.approx(tckd, rel=1e-4)
    assert got_n.item() == pytest.approx(nckd, rel=1e-4)
    got = dkd_loss(torch.tensor(S_LS), torch.tensor(T_LS), torch.tensor(y), T, alpha=1.0, beta=8.0, standardize=True)
    assert got.item() == pytest.approx(tckd + 8.0 * nckd, rel=1e-4)


def test_logit_standardization_ignores_each_samples_shift_and_scale():
    """The paper's point: a student whose logits are an affine map (a > 0) of the teacher's costs nothing."""
    t = torch.randn(4, 7, dtype=torch.float64)
    s = 0.3 * t + torch.randn(4, 1, dtype=torch.float64)
    assert kd_loss(s, t, 2.0, standardize=True).item() == pytest.approx(0.0, abs=1e-9)
    assert kd_loss(s, t, 2.0).item() > 1e-3


def pearson(u, v):
    """Pearson's r of two lists, from its textbook definition."""
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    cov = sum((a - mu) * (b - mv) for a, b in zip(u, v))
    return cov / (math.sqrt(sum((a - mu) ** 2 for a in u)) * math.sqrt(sum((b - mv) ** 2 for b in v)))


def test_dist_terms_by_hand():
    """DIST (arXiv:2205.10536, Eqs. 5-7): 1 - mean Pearson over rows (inter) and over columns (intra), times T^2."""
    s = [[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 1.0, 2.0], [3.0, 0.2, -0.4, 0.1]]
    t = [[2.0, 0.0, 1.0, -2.0], [1.0, 1.0, -2.0, 0.5], [2.5, 1.0, 0.0, -1.0]]
    T = 4.0
    ys = [softmax([x / T for x in row]) for row in s]
    yt = [softmax([x / T for x in row]) for row in t]
    inter = 1 - sum(pearson(ys[i], yt[i]) for i in range(3)) / 3
    intra = 1 - sum(pearson([ys[i][k] for i in range(3)], [yt[i][k] for i in range(3)]) for k in range(4)) / 4
    got_inter, got_intra = dist_terms(torch.tensor(s), torch.tensor(t), T)
    assert got_inter.item() == pytest.approx(inter * T * T, rel=1e-4)
    assert got_intra.item() == pytest.approx(intra * T * T, rel=1e-4)
    got = dist_loss(torch.tensor(s), torch.tensor(t), T, beta=2.0, gamma=0.5)
    assert got.item() == pytest.approx((2.0 * inter + 0.5 * intra) * T * T, rel=1e-4)


def test_dist_of_identical_logits_is_zero_and_gradient_skips_teacher():
    s = torch.randn(5, 6, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    inter, intra = dist_terms(s, t, 1.0)
    (inter + intra).backward()
    assert inter.item() == pytest.approx(0.0, abs=1e-6) and intra.item() == pytest.approx(0.0, abs=1e-6)
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("name", ["kd", "pseudo-label", "dkd", "regression-kd", "dist"])
def test_conformance(name):
    check_strategy(name)


def test_presets_resolve():
    check_strategy("dkd", preset="cpu")
    check_strategy("kd", preset="soft-only")
    check_strategy("dist", preset="cpu")
    check_strategy("dist", preset="paper")
    check_strategy("kd", preset="logit-std")
    check_strategy("dkd", preset="logit-std")
