"""The teacher stays frozen while gradients reach the generator / pixels; state resumes exactly."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from datafree_helpers import frozen_teacher, tiny_run

import kdzoo
import kdzoo.plugin
from kdzoo.config import ModelConfig
from kdzoo.testing import check_strategy

SMALL = {
    "dafl": {"ngf": 4, "nz": 8, "bn": 1.0},
    "dfad": {"ngf": 4, "nz": 8, "g_every": 2, "bn": 1.0},
    "deep-inversion": {"batches": 2, "synth_batch": 8, "iters": 3, "kd_steps": 2, "adi": 0.5, "l2": 1e-4},
    "noise-kd": {},
}
PRESETS = ("paper", "cpu")


@pytest.mark.parametrize("name", ["dafl", "dfad", "deep-inversion", "noise-kd", "set-kd"])
def test_conformance_and_presets(name, zoo, tmp_path):
    params = dict(SMALL.get(name, {}))
    if name == "set-kd":
        torch.save(torch.rand(20, 1, 16, 16), tmp_path / "set.pt")
        params = {"path": str(tmp_path / "set.pt")}
    check_strategy(name, params, zoo=zoo)
    from kdzoo.config import StrategySpec
    from kdzoo.zoo.stack import resolve_params

    cls = zoo.strategy(name).obj
    assert set(PRESETS) <= set(cls.presets)
    for preset in PRESETS:
        resolve_params(cls, StrategySpec(name, {"path": "x.pt"} if name == "set-kd" else {}, preset))


@pytest.mark.parametrize("name", ["dafl", "dfad", "deep-inversion"])
def test_teacher_frozen_while_gradients_reach_the_synthesiser(name, zoo):
    trainer, ctx = tiny_run(name, SMALL[name], steps=3, zoo=zoo)
    before = copy.deepcopy(ctx.teacher.state_dict())
    assert not ctx.teacher.training and not any(p.requires_grad for p in ctx.teacher.parameters())
    source = trainer.source
    if name == "deep-inversion":
        rng = source.rng.get_state()
        start = source.randn(8, 1, 16, 16)  # the pixels round 0 starts from
        source.rng.set_state(rng)
    for step in range(3):
        trainer.train_step(step)
    for key, value in ctx.teacher.state_dict().items():  # weights and BN running statistics
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in ctx.teacher.parameters())
    assert "bn" in source.last and source.last["bn"] > 0
    if name == "deep-inversion":
        first = source.pool[:8]
        assert not torch.allclose(first, source.to_data(start)), "the pixels did not move"
        assert source.pool.shape[0] == 16  # two rounds (steps 0 and 2)
    else:
        grads = [p.grad for p in source.generator.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_dfad_generator_step_leaves_no_gradient_on_the_student(zoo):
    trainer, ctx = tiny_run("dfad", SMALL["dfad"], steps=2, zoo=zoo)
    info = kdzoo.plugin.StepInfo(0, 2, 0.0)
    trainer.source.next_batch(info, ctx)  # step 0 is a generator step: runs the student with grad w.r.t. x
    assert all(p.grad is None for p in ctx.student.parameters())
    assert all(p.grad is not None for p in trainer.source.generator.parameters())


def test_dfad_generator_step_raises_the_discrepancy_it_maximises(zoo):
    trainer, ctx = tiny_run("dfad", {"ngf": 4, "nz": 8, "lr_g": 0.05}, steps=1, zoo=zoo)
    src = trainer.source
    z = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))

    def discrepancy():
        with torch.no_grad():
            src.generator.eval()
            x = src.to_data(src.generator(z))
            src.generator.train()
            return src.objective(x, ctx)[1]["l1"]

    start = discrepancy()
    for step in range(5):
        src.generator_step(ctx)
    assert discrepancy() > start


def test_bn_less_teacher_is_a_clear_error(zoo):
    for name, params in (("deep-inversion", {}), ("dafl", {"bn": 1.0}), ("dfad", {"bn": 1.0})):
        with pytest.raises(kdzoo.ConfigError, match="BatchNorm"):
            check_strategy(name, params, zoo=zoo, teacher=ModelConfig("lenet5"))
    check_strategy("dafl", {"ngf": 4, "nz": 8}, zoo=zoo, teacher=ModelConfig("lenet5"))  # no prior: no BN needed


def _snapshot(trainer, ctx):
    return copy.deepcopy(ctx.student.state_dict()), copy.deepcopy(trainer.stack.state_dict())


def _assert_same(a, b):
    for (ka, va), (kb, vb) in zip(a.items(), b.items()):
        assert ka == kb
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), ka


@pytest.mark.parametrize("name", ["dafl", "dfad", "deep-inversion", "noise-kd"])
def test_two_steps_save_restore_two_steps_equals_four_steps(name, zoo):
    teacher = frozen_teacher()
    torch.manual_seed(5)
    straight, ctx = tiny_run(name, SMALL[name], steps=4, zoo=zoo, teacher=teacher)
    for step in range(4):
        straight.train_step(step)
    want_student, want_strategy = _snapshot(straight, ctx)

    torch.manual_seed(5)
    first, ctx1 = tiny_run(name, SMALL[name], steps=4, zoo=zoo, teacher=teacher)
    for step in range(2):
        first.train_step(step)
    buf = io.BytesIO()
    torch.save(first.state(2, {"val": None, "step": -1, "state": None, "last_val": None}), buf)
    buf.seek(0)
    torch.manual_seed(123)  # a fresh process: other weights and RNG until restored
    second, ctx2 = tiny_run(name, SMALL[name], steps=4, zoo=zoo, teacher=teacher)
    step, _ = second.restore(torch.load(buf, weights_only=False))
    for s in range(step, 4):
        second.train_step(s)
    got_student, got_strategy = _snapshot(second, ctx2)
    _assert_same(got_student, want_student)
    _assert_same(got_strategy, want_strategy)
    extra = [k for k in got_strategy if k.endswith("_extra_state")]
    assert extra, "the source's optimiser / RNG state is not in the strategy's state_dict"
    a, b = got_strategy[extra[0]], want_strategy[extra[0]]
    assert torch.equal(a["rng"], b["rng"])
    if name == "deep-inversion":
        assert torch.equal(a["pool"], b["pool"])
    if name in ("dafl", "dfad"):
        sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
