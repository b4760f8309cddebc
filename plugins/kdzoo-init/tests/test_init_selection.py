"""Weight selection puts exactly the expected teacher slices into the student, for each model family."""

from __future__ import annotations

import pytest
import torch

from kdzoo.plugin import RunContext
from kdzoo_init.selection import NotSelectable, element_indices, select_elements
from kdzoo_init.weight_selection import WeightSelection, WeightSelectionConfig

from init_helpers import CLASSES, build, scramble


def init(zoo, teacher, student, **params):
    ctx = RunContext(config=None, student=student, teacher=teacher, task="classification", classes=CLASSES,
                     data_shape=(1, 28, 28), seed=0, device=torch.device("cpu"))
    return WeightSelection(WeightSelectionConfig(**params), ctx).init_student(ctx)


def strided(t, shape):
    """``t[::k0, ::k1, ...]`` for integral ratios: the paper's uniform selection written by hand."""
    return t[tuple(slice(None, None, a // b) for a, b in zip(t.shape, shape))]


def assert_uniform_slices(teacher, student, mapping=lambda k: k):
    """Every student tensor with integral size ratios equals the strided teacher tensor."""
    t_sd, s_sd = teacher.net.state_dict(), student.net.state_dict()
    checked = 0
    for key, s in s_sd.items():
        t = t_sd[mapping(key)]
        if s.dim() and all(a % b == 0 for a, b in zip(t.shape, s.shape)) and "qkv" not in key:
            assert torch.equal(s, strided(t, s.shape)), key
            checked += 1
    assert checked > 10


def test_index_rules_follow_the_official_code():
    assert element_indices(8, 4, "uniform").tolist() == [0, 2, 4, 6]
    assert element_indices(96, 64, "uniform").tolist()[:4] == [0, 2, 3, 5]  # round(linspace(0, 95, 64))
    assert element_indices(10, 4, "uniform").tolist() == [0, 3, 6, 9]
    assert element_indices(10, 4, "consecutive").tolist() == [0, 1, 2, 3]
    with pytest.raises(NotSelectable, match="larger"):
        element_indices(4, 8, "uniform")
    with pytest.raises(NotSelectable, match="kernel size"):
        select_elements(torch.zeros(4, 4, 3, 3), (2, 2, 5, 5), "uniform")


def test_fused_qkv_is_selected_inside_q_k_and_v():
    qkv = torch.arange(9 * 3, dtype=torch.float).view(9, 3)  # 3 blocks of 3 rows
    out = select_elements(qkv, (6, 2), "uniform", fused=3)
    idx = element_indices(3, 2, "uniform")
    assert torch.equal(out, qkv.view(3, 3, 3)[:, idx][:, :, idx].reshape(6, 2))


def test_mlp_width_and_depth(zoo):
    teacher = scramble(build(zoo, "mlp", {"hidden": [64, 48]}))
    student = build(zoo, "mlp", {"hidden": [16]})
    report = init(zoo, teacher, student)
    t, s = teacher.net.state_dict(), student.net.state_dict()
    assert torch.equal(s["stages.0.1.weight"], t["stages.0.1.weight"][::4])
    assert torch.equal(s["fc.weight"], t["fc.weight"][:, ::3])
    assert report["tensors_from_teacher"] == report["tensors_total"] == 4
    assert report["block_maps"][0]["source"] == [0]


def test_resnet_deeper_and_wider_teacher_with_consistent_bn_statistics(zoo):
    wider = {"layers": [2, 2, 2, 2], "channels": [64, 96, 96, 192], "stem_width": 32}
    teacher = scramble(build(zoo, "test_resnet", wider))
    student = build(zoo, "test_resnet")
    report = init(zoo, teacher, student)
    assert_uniform_slices(teacher, student)
    t, s = teacher.net.state_dict(), student.net.state_dict()
    assert torch.equal(s["layer2.0.bn2.running_var"], t["layer2.0.bn2.running_var"][::2])
    assert torch.equal(s["layer2.0.conv2.weight"], t["layer2.0.conv2.weight"][::2, ::2])
    assert report["params_from_teacher"] == report["params_total"]
    assert [m["source"] for m in report["block_maps"]] == [[0]] * 4
    assert torch.isfinite(student(torch.rand(2, 1, 28, 28))).all()


def test_resnet_evenly_spaced_layer_selection(zoo):
    teacher = scramble(build(zoo, "test_resnet", {"layers": [3, 1, 1, 1]}))
    student = build(zoo, "test_resnet", {"layers": [2, 1, 1, 1]})
    init(zoo, teacher, student, layer_selection="evenly-spaced")
    t, s = teacher.net.state_dict(), student.net.state_dict()
    assert torch.equal(s["layer1.1.conv1.weight"], t["layer1.2.conv1.weight"])
    assert torch.equal(s["layer1.0.conv1.weight"], t["layer1.0.conv1.weight"])


VIT = {"img_size": 28, "patch_size": 4}


def test_vit_width_depth_qkv_and_pos_embed(zoo):
    teacher = scramble(build(zoo, "test_vit", dict(VIT, depth=4, embed_dim=96, num_heads=3)))
    student = build(zoo, "test_vit", dict(VIT, depth=2, embed_dim=64, num_heads=2))
    report = init(zoo, teacher, student)
    t, s = teacher.net.state_dict(), student.net.state_dict()
    idx = element_indices(96, 64, "uniform")
    hidden = element_indices(3 * 96, 3 * 64, "uniform")
    assert torch.equal(s["pos_embed"], t["pos_embed"][:, :, idx])  # all 50 tokens kept
    assert torch.equal(s["cls_token"], t["cls_token"][:, :, idx])
    qkv = t["blocks.1.attn.qkv.weight"].view(3, 96, 96)[:, idx][:, :, idx].reshape(192, 64)
    assert torch.equal(s["blocks.1.attn.qkv.weight"], qkv)
    assert torch.equal(s["blocks.1.mlp.fc1.weight"], t["blocks.1.mlp.fc1.weight"][hidden][:, idx])
    assert torch.equal(s["head.weight"], t["head.weight"][:, idx])
    assert report["block_maps"][0]["source"] == [0, 1]
    assert torch.isfinite(student(torch.rand(2, 1, 28, 28))).all()


def test_vit_pos_embed_of_another_grid_is_resampled(zoo):
    teacher = build(zoo, "test_vit", {"img_size": 32, "patch_size": 4, "depth": 2, "embed_dim": 128})
    student = build(zoo, "test_vit", dict(VIT, depth=1))
    report = init(zoo, teacher, student)
    assert any("resampled to 7x7" in n for n in report["notes"])
    assert report["params_from_teacher"] == report["params_total"]
    assert torch.isfinite(student(torch.rand(2, 1, 28, 28))).all()


def test_convnext_first_n_within_each_stage(zoo):
    size = [32, 32]
    larger = {"depths": [2, 3, 6, 3], "dims": [48, 64, 96, 128]}
    teacher = scramble(build(zoo, "test_convnext", larger, input_size=size))
    student = build(zoo, "test_convnext", input_size=size)
    report = init(zoo, teacher, student)
    assert_uniform_slices(teacher, student)
    assert [m["source"] for m in report["block_maps"]] == [[0], [0, 1], [0, 1, 2, 3], [0, 1]]
    assert torch.isfinite(student(torch.rand(2, 1, 32, 32))).all()


def test_efficientnet_channel_and_depth_multipliers(zoo):
    teacher = scramble(build(zoo, "test_efficientnet", {"channel_multiplier": 2.0, "depth_multiplier": 2.0}))
    student = build(zoo, "test_efficientnet")
    report = init(zoo, teacher, student, element_selection="consecutive")
    t, s = teacher.net.state_dict(), student.net.state_dict()
    assert torch.equal(s["blocks.3.0.conv_pw.weight"], t["blocks.3.0.conv_pw.weight"][:128, :32])
    assert torch.equal(s["blocks.3.0.bn1.running_mean"], t["blocks.3.0.bn1.running_mean"][:128])
    assert report["params_from_teacher"] == report["params_total"]
    assert torch.isfinite(student(torch.rand(2, 1, 28, 28))).all()
