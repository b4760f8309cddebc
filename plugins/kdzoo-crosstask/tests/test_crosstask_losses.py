"""Each cross-task loss against a hand computation on tiny tensors."""

import math

import pytest
import torch

from kdzoo.losses import (class_mapped_kd_loss, class_mapped_probs, local_classifier_kd_loss, pooled_feature_loss,
                          rkd_angle_loss, rkd_distance_loss, semihard_triplets, sp_loss, triplet_relation_loss)
from kdzoo_crosstask.class_mapped_kd import class_matrix
from kdzoo_crosstask.probe import class_centres, ncm_predict


def softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def smooth_l1(x):
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


# a 3-4-5 triangle (student) and a right isosceles triangle (teacher), both right-angled at point 0
S = [[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]
T = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_class_map_sums_teacher_probabilities_and_drops_unmapped_classes():
    m = class_matrix({"0": "a", "1": "b", "2": "a", "3": None}, ["0", "1", "2", "3"], ["a", "b"])
    assert m.tolist() == [[1, 0], [0, 1], [1, 0], [0, 0]]
    t, s, temp = [2.0, 0.0, 1.0, -1.0], [0.5, -0.5], 2.0
    p = softmax([v / temp for v in t])
    q = [(p[0] + p[2]) / (1 - p[3]), p[1] / (1 - p[3])]
    assert class_mapped_probs(torch.tensor([t]), m, temp)[0].tolist() == pytest.approx(q, rel=1e-5)
    ps = softmax([v / temp for v in s])
    got = class_mapped_kd_loss(torch.tensor([s]), torch.tensor([t]), m, temp)
    assert got.item() == pytest.approx(kl(q, ps) * temp ** 2, rel=1e-5)


def test_rkd_distance_by_hand():
    ds = [3, 4, 5]  # pairs (0,1), (0,2), (1,2); each appears twice in the 3x3 matrix
    dt = [1, 1, math.sqrt(2)]
    ms, mt = sum(ds) / 3, sum(dt) / 3
    expected = 2 * sum(smooth_l1(a / ms - b / mt) for a, b in zip(ds, dt)) / 9
    assert rkd_distance_loss(torch.tensor(S), torch.tensor(T)).item() == pytest.approx(expected, rel=1e-5)


def test_rkd_angle_by_hand():
    # cosine of the angle at each vertex: student (0, 0.6, 0.8), teacher (0, 1/sqrt2, 1/sqrt2); each
    # appears twice (j, k and k, j); j == k entries are 1 in both; entries with j or k at the vertex are 0
    diffs = [0.0, 0.6 - 1 / math.sqrt(2), 0.8 - 1 / math.sqrt(2)]
    expected = 2 * sum(smooth_l1(d) for d in diffs) / 27
    assert rkd_angle_loss(torch.tensor(S), torch.tensor(T)).item() == pytest.approx(expected, rel=1e-5)


def test_rkd_is_invariant_to_scale_and_rotation_of_the_teacher():
    torch.manual_seed(0)
    s, t = torch.randn(6, 4), torch.randn(6, 3)
    q, _ = torch.linalg.qr(torch.randn(3, 3))
    for loss in (rkd_distance_loss, rkd_angle_loss):
        assert loss(s, t).item() == pytest.approx(loss(s, 7 * t @ q).item(), rel=1e-4, abs=1e-6)
        assert loss(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_sp_by_hand():
    fs, ft = [[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]
    # the rows of F F^T = [[1, 1], [1, 2]], L2-normalised
    gs = [[1 / math.sqrt(2), 1 / math.sqrt(2)], [1 / math.sqrt(5), 2 / math.sqrt(5)]]
    gt = [[1.0, 0.0], [0.0, 1.0]]
    expected = sum((gt[i][j] - gs[i][j]) ** 2 for i in range(2) for j in range(2)) / 4
    assert sp_loss(torch.tensor(fs), torch.tensor(ft)).item() == pytest.approx(expected, rel=1e-5)


def test_projector_mse_standard_and_inverted_by_hand():
    proj = torch.nn.Linear(2, 1)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[2.0, -1.0]]))
        proj.bias.fill_(0.5)
    s2, t1 = torch.tensor([[1.0, 3.0], [0.0, 1.0]]), torch.tensor([[1.0], [2.0]])
    # standard: P(s) = [2 - 3 + .5, 0 - 1 + .5] = [-0.5, -0.5] against t = [1, 2]
    expected = ((1.5 ** 2) + (2.5 ** 2)) / 2
    assert pooled_feature_loss(s2, t1, "mse", proj, project="student").item() == pytest.approx(expected)
    # inverted: P(t) with P: 2 -> 1 maps the (2-d) teacher into the (1-d) student space
    t2, s1 = s2, t1
    assert pooled_feature_loss(s1, t2, "mse", proj, project="teacher").item() == pytest.approx(expected)
    loss = pooled_feature_loss(s1.clone().requires_grad_(True), t2.clone().requires_grad_(True), "mse", proj,
                               project="teacher")
    loss.backward()
    assert proj.weight.grad is not None  # the projector is trained; the teacher input is detached


def unit(angle):
    return [math.cos(angle), math.sin(angle)]


def test_refilled_semihard_mining_by_hand():
    emb = torch.tensor([unit(0.0), unit(0.1), unit(0.25), unit(-2.0)])
    labels = torch.tensor([0, 0, 1, 1])
    a, p, n = semihard_triplets(emb, labels, torch.arange(4), margin=0.2)
    # d(0,1)=2sin(.05)=.100, d(0,2)=2sin(.125)=.249, d(1,2)=2sin(.075)=.150: gaps .149 and .050 are
    # semi-hard; point 3 (class 1, across the circle) is nearer to class 0 than to its positive: no triplet
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist())) == [(0, 1, 2), (1, 0, 2)]
    # the same image drawn twice is not its own positive
    assert len(semihard_triplets(emb, labels, torch.tensor([0, 0, 2, 3]), 0.2)[0]) == 0


def test_refilled_relation_loss_by_hand():
    s = torch.tensor([unit(0.0), unit(0.1), unit(0.25)])
    t = torch.tensor([unit(0.0), unit(0.3), unit(0.2)])
    trip = (torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2, 2]))
    tau = 4.0

    def d(e, i, j):
        return math.dist(e[i].tolist(), e[j].tolist())

    total = 0.0
    for a, p, n in zip(*[x.tolist() for x in trip]):
        pt = 1 / (1 + math.exp(-(d(t, a, n) - d(t, a, p)) / tau))
        ps = 1 / (1 + math.exp(-(d(s, a, n) - d(s, a, p)) / tau))
        total += kl([pt, 1 - pt], [ps, 1 - ps])
    assert triplet_relation_loss(s, t, trip, tau).item() == pytest.approx(total / 4, rel=1e-4)  # / (2 * 2 triplets)
    empty = (torch.tensor([], dtype=torch.long),) * 3
    assert triplet_relation_loss(s, t, empty, tau).item() == 0.0


def test_refilled_local_classifier_by_hand():
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    centres = class_centres(emb, torch.tensor([0, 0, 1, 2]), 3)
    assert centres.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]  # normalised means
    s_logits, t_emb, tau = [[1.0, 0.0, -1.0]], [[2.0, 1.0]], 2.0
    classes = torch.tensor([True, False, True])  # the local classifier: classes 0 and 2 only
    t_logits = [2.0, 1.0]  # t_emb . c_0, t_emb . c_2
    expected = kl(softmax([v / tau for v in t_logits]), softmax([1.0 / tau, -1.0 / tau]))
    got = local_classifier_kd_loss(torch.tensor(s_logits), torch.tensor(t_emb), centres, classes, tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_nearest_class_mean_probe_by_hand():
    centres = class_centres(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]), 2)
    x = torch.tensor([[2.0, 1.0], [0.1, 3.0], [5.0, 5.1]])
    assert ncm_predict(x, centres).tolist() == [0, 1, 1]
    assert ncm_predict(x, centres, "euclidean").tolist() == [0, 1, 1]
