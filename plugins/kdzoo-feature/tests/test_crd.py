"""CRD: the strategy's loss and memory update against the paper's formulas, refusals, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import kdzoo
import kdzoo.plugin
from kdzoo import ConfigError
from kdzoo.train.checkpoint import load_checkpoint, save_checkpoint
from kdzoo.testing import check_strategy, tiny_run

from test_feature_training import make_trainer


def test_crd_conforms_with_each_preset(zoo):
    for preset in ("smoke", "cpu"):
        assert "crd" in check_strategy("crd", zoo=zoo, preset=preset)


def test_crd_forward_equals_the_papers_nce_and_momentum_update_by_loops(zoo):
    """One forward on fixed features: both NCE terms from the banks, Z, and the rows' momentum update."""
    run = tiny_run("crd", {"negatives": 6, "feat_dim": 4, "temperature": 0.5, "momentum": 0.5}, zoo=zoo)
    crd = run.stack.members[0]
    n, b = crd.n_data, 3
    f_s = torch.randn(b, run.ctx.student.num_features, generator=torch.Generator().manual_seed(1))
    f_t = torch.randn(b, run.ctx.teacher.num_features, generator=torch.Generator().manual_seed(2))
    index = torch.tensor([5, 0, 17])
    batch = kdzoo.plugin.Batch(x=torch.zeros(b, 1), y=None, labelled=torch.zeros(b, dtype=torch.bool), index=index)
    mem_s, mem_t = crd.memory_s.clone().tolist(), crd.memory_t.clone().tolist()
    idx = crd.sample(index).tolist()  # the rows the forward will draw (draw count 0)
    assert [r[0] for r in idx] == index.tolist() and all(0 <= j < n for r in idx for j in r)
    with torch.no_grad():
        v_s = F.normalize(crd.embed_s(f_s), dim=1).tolist()
        v_t = F.normalize(crd.embed_t(f_t), dim=1).tolist()
    terms = crd(batch, kdzoo.plugin.Outputs(pooled=f_s), kdzoo.plugin.Outputs(pooled=f_t), None)

    def dot(a, c):
        return sum(x * y for x, y in zip(a, c))

    def scores(v, memory):
        return [[math.exp(dot(memory[j], v[i]) / 0.5) for j in idx[i]] for i in range(b)]

    out_s, out_t = scores(v_s, mem_t), scores(v_t, mem_s)  # student vs teacher bank, teacher vs student bank
    z_s = sum(map(sum, out_s)) / (b * 7) * n
    z_t = sum(map(sum, out_t)) / (b * 7) * n
    assert crd.z.tolist() == pytest.approx([z_s, z_t], rel=1e-5)

    def nce(out, z):
        noise, total = 6 / n, 0.0
        for r in out:
            p = [x / z for x in r]
            total += math.log(p[0] / (p[0] + noise + 1e-7)) + sum(math.log(noise / (q + noise + 1e-7)) for q in p[1:])
        return -total / b

    assert terms["crd"].item() == pytest.approx(nce(out_s, z_s) + nce(out_t, z_t), rel=1e-5)
    for i, row in enumerate(index.tolist()):
        for memory, bank, v in ((mem_s, crd.memory_s, v_s), (mem_t, crd.memory_t, v_t)):
            mixed = [0.5 * a + 0.5 * c for a, c in zip(memory[row], v[i])]
            norm = math.sqrt(sum(x * x for x in mixed))
            assert bank[row].tolist() == pytest.approx([x / norm for x in mixed], rel=1e-5, abs=1e-6)
    untouched = [r for r in range(n) if r not in index.tolist()]
    assert torch.equal(crd.memory_s[untouched], torch.tensor(mem_s)[untouched])
    assert int(crd.draws) == 1


def test_crd_refuses_synthetic_data_in_one_line(zoo):
    with pytest.raises(ConfigError, match=r"^crd: needs training data with stable dataset indices .*dafl$"):
        make_trainer(zoo, [{"name": "crd", "preset": "smoke"}, {"name": "dafl", "params": {"ngf": 8, "nz": 16}}], 2)


def test_crd_refuses_a_distiller_without_a_training_set(zoo):
    with pytest.raises(ConfigError, match="^crd: needs training data .*no training set$"):
        kdzoo.Distiller("lenet5", "lenet5", "crd", num_classes=4, input_shape=(1, 16, 16), zoo=zoo)


def test_crd_refuses_a_training_batch_without_indices_but_not_the_probes_copy(zoo):
    import copy

    run = tiny_run("crd", zoo=zoo)
    crd = run.stack.members[0]
    b = 4
    student = kdzoo.plugin.Outputs(pooled=torch.randn(b, run.ctx.student.num_features))
    teacher = kdzoo.plugin.Outputs(pooled=torch.randn(b, run.ctx.teacher.num_features))
    batch = kdzoo.plugin.Batch(x=torch.zeros(b, 1), y=None, labelled=torch.zeros(b, dtype=torch.bool),
                        index=torch.tensor([3, -1, 5, 7]))
    with pytest.raises(ConfigError, match=r"^crd: a training batch has samples without a dataset index"):
        crd(batch, student, teacher, None)
    probe = copy.deepcopy(crd)  # as the gradient-path probe: synthetic samples, no bank update for them
    before = probe.memory_s.clone()
    assert torch.isfinite(probe(batch, student, teacher, None)["crd"])
    assert torch.equal(probe.memory_s[[0, 1, 2, 4, 6]], before[[0, 1, 2, 4, 6]])
    assert not torch.equal(probe.memory_s[[3, 5, 7]], before[[3, 5, 7]])


def test_crd_memory_bank_is_checkpointed_and_resumes_exactly(zoo, tmp_path):
    specs = [{"name": "crd", "preset": "smoke"}]
    whole, _, whole_stack = make_trainer(zoo, specs, total_steps=4)
    for step in range(4):
        whole.train_step(step)
    first, _, first_stack = make_trainer(zoo, specs, total_steps=4)
    for step in range(2):
        first.train_step(step)
    save_checkpoint(first.state(2, {"val": None}), tmp_path / "checkpoint.pt")
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"members.0.memory_s", "members.0.memory_t", "members.0.z", "members.0.draws"} <= set(ckpt["strategy"])
    assert not torch.equal(ckpt["strategy"]["members.0.memory_s"], whole_stack.state_dict()["members.0.memory_s"])
    resumed, ctx, stack = make_trainer(zoo, specs, total_steps=4, seed=123)  # different initial weights
    assert resumed.restore(ckpt)[0] == 2
    for step in range(2, 4):
        resumed.train_step(step)
    for (k, a), b in zip(whole_stack.state_dict().items(), stack.state_dict().values()):
        assert torch.equal(a, b), k
    for (k, a), b in zip(whole.ctx.student.state_dict().items(), ctx.student.state_dict().values()):
        assert torch.equal(a, b), k
