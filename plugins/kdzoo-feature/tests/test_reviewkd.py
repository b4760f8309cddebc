"""ReviewKD: the ABF fusion against its definition, the level layout, the warm-up, conformance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import kdzoo
import kdzoo.plugin
from kdzoo.config import ModelConfig
from kdzoo.losses import hcl_loss
from kdzoo.testing import check_strategy, tiny_run

from kdzoo_feature.reviewkd import ABF

VIT16 = ModelConfig("test_vit", {"img_size": 16, "patch_size": 4})


def test_abf_fuses_with_two_sigmoid_attention_maps_by_loops():
    """ABF (arXiv:2104.09044, Fig. 3): a = sigmoid(W [conv1 x; up(y)] + b); fused = x * a_0 + up(y) * a_1."""
    torch.manual_seed(0)
    abf = ABF(3, 2, 4, fuse=True).eval()  # eval: BatchNorm applies its (default) running statistics
    x = torch.randn(1, 3, 2, 2)
    y = torch.randn(1, 2, 1, 1)  # the deeper residual, upsampled (nearest) to 2x2
    out, fused = abf(x, y, (2, 2))
    w1 = abf.conv1[0].weight[:, :, 0, 0].tolist()
    bn_scale = 1 / math.sqrt(1 + abf.conv1[1].eps)  # running mean 0, var 1, weight 1, bias 0
    wa, ba = abf.att_conv[0].weight[:, :, 0, 0].tolist(), abf.att_conv[0].bias.tolist()
    for i in range(2):
        for j in range(2):
            pix = [x[0, c, i, j].item() for c in range(3)]
            xc = [sum(w * p for w, p in zip(row, pix)) * bn_scale for row in w1]
            yc = [y[0, c, 0, 0].item() for c in range(2)]
            att = [1 / (1 + math.exp(-(sum(w * v for w, v in zip(row, xc + yc)) + b))) for row, b in zip(wa, ba)]
            want = [a * att[0] + b * att[1] for a, b in zip(xc, yc)]
            assert fused[0, :, i, j].tolist() == pytest.approx(want, rel=1e-5, abs=1e-6)
    conv2 = F.conv2d(fused, abf.conv2[0].weight, padding=1) / math.sqrt(1 + abf.conv2[1].eps)
    assert torch.allclose(out, conv2, atol=1e-6)
    assert out.shape == (1, 4, 2, 2)


def test_deepest_level_has_no_fusion_and_outputs_take_the_teachers_sizes():
    run = tiny_run("reviewkd", {"warmup_epochs": 0.0})
    rkd = run.stack.members[0]
    assert rkd.abfs[0].att_conv is None and all(a.att_conv is not None for a in rkd.abfs[1:])
    s_levels = [torch.randn(2, *s.shape) for _, s in rkd.pairs] + [torch.randn(2, run.ctx.student.num_features, 1, 1)]
    outs = rkd.fuse(s_levels)
    t_shapes = [t.shape for t, _ in rkd.pairs] + [(run.ctx.teacher.num_features, 1, 1)]
    assert [tuple(o.shape[1:]) for o in outs] == [tuple(s) for s in t_shapes]


def test_term_is_hcl_of_the_fused_levels_with_linear_warmup():
    run = tiny_run("reviewkd", {"warmup_epochs": 4.0})
    rkd = run.stack.members[0]
    g = torch.Generator().manual_seed(3)
    s_feat = {s.index: torch.randn(2, *s.shape, generator=g) for _, s in rkd.pairs}
    t_feat = {t.index: torch.randn(2, *t.shape, generator=g) for t, _ in rkd.pairs}
    s_pool = torch.randn(2, run.ctx.student.num_features, generator=g)
    t_pool = torch.randn(2, run.ctx.teacher.num_features, generator=g)
    student = kdzoo.plugin.Outputs(pooled=s_pool, features=s_feat)
    teacher = kdzoo.plugin.Outputs(pooled=t_pool, features=t_feat)
    rkd.eval()  # BatchNorm with running statistics: two calls see the same function
    s_levels = [s_feat[s.index] for _, s in rkd.pairs] + [s_pool[:, :, None, None]]
    t_levels = [t_feat[t.index] for t, _ in rkd.pairs] + [t_pool[:, :, None, None]]
    full = hcl_loss(rkd.fuse(s_levels), t_levels)
    for epoch, factor in ((1.0, 0.25), (8.0, 1.0)):
        step = kdzoo.plugin.StepInfo(step=0, total_steps=10, epoch=epoch)
        got = rkd(None, student, teacher, step)["reviewkd"]
        assert got.item() == pytest.approx(factor * full.item(), rel=1e-6)


@pytest.mark.parametrize("pair", ["lenet5", "resnet->vit", "vit->resnet"])
def test_reviewkd_conforms(pair):
    teacher, student = {"lenet5": (None, None), "resnet->vit": (ModelConfig("test_resnet"), VIT16),
                        "vit->resnet": (VIT16, ModelConfig("test_resnet"))}[pair]
    assert "reviewkd" in check_strategy("reviewkd", teacher=teacher, student=student)
    check_strategy("reviewkd", preset="cpu", teacher=teacher, student=student)


def test_reviewkd_refuses_models_without_stage_maps_in_one_line():
    with pytest.raises(kdzoo.ConfigError, match=r"^student layer: model 'linear' exposes no intermediate features"):
        tiny_run("reviewkd", student=ModelConfig("linear"))
