"""The strategies in training: gradients, FitNets' exclusive hint stage, checkpoints, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from kdzoo import ConfigError
from kdzoo.train.checkpoint import load_checkpoint, save_checkpoint
from kdzoo.cli import main
from kdzoo.config import ModelConfig, make_config
from kdzoo.contract.context import RunContext
from kdzoo.data import BatchPlan, make_splits
from kdzoo.models.wrapper import create_model
from kdzoo.zoo.stack import build_stack
from kdzoo.testing import check_strategy, tiny_bundle
from kdzoo.train.trainer import Trainer, freeze

VIT16 = ModelConfig("test_vit", {"img_size": 16, "patch_size": 4})
PAIRS = {
    "lenet5-bn->lenet5-half": (None, None),
    "test_resnet->test_vit": (ModelConfig("test_resnet"), VIT16),
    "test_vit->test_resnet": (VIT16, ModelConfig("test_resnet")),
    "lenet5->test_efficientnet": (ModelConfig("lenet5"), ModelConfig("test_efficientnet")),
}


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("name", ["fitnet", "at", "pooled-feature"])
def test_gradients_reach_student_and_regressors_never_the_teacher(zoo, name, pair):
    teacher, student = PAIRS[pair]
    logged = check_strategy(name, zoo=zoo, teacher=teacher, student=student)
    assert "loss" in logged


def make_trainer(zoo, specs, total_steps, seed=0, teacher=ModelConfig("lenet5", {"batchnorm": True}),
                 student=ModelConfig("lenet5", {"width": 0.5})):
    bundle = tiny_bundle()
    config = make_config({"student": vars(student), "teacher": vars(teacher), "strategy": specs,
                          "data": {"name": "tiny", "batch_size": 16, "labels_per_class": 8},
                          "train": {"steps": total_steps, "epochs": None}, "runtime": {"progress": False}})
    splits = make_splits(bundle, config.data)

    def build(cfg):
        return create_model(cfg, num_classes=4, data_shape=bundle.sample_shape, data_mean=None, data_std=None,
                            classes=bundle.classes, task="classification", zoo=zoo)

    torch.manual_seed(0)
    t_model = freeze(build(config.teacher))
    torch.manual_seed(seed)
    s_model = build(config.student)
    ctx = RunContext(config=config, student=s_model, teacher=t_model, task="classification", classes=bundle.classes,
                     data_shape=bundle.sample_shape, seed=0, device=torch.device("cpu"), total_steps=total_steps,
                     steps_per_epoch=2, zoo=zoo, bundle=bundle, splits=splits)
    stack = build_stack(config.strategy, ctx, zoo)
    plan = BatchPlan(bundle, splits, config.data, 0, stack.uses_unlabelled)
    torch.manual_seed(0)
    return Trainer(ctx, stack, plan), ctx, stack


def test_hint_stage_trains_only_up_to_the_guided_layer_then_the_stack_adds_kd(zoo):
    specs = [{"name": "fitnet", "params": {"stage2": "ce", "guided": 0, "hint": 0, "hint_fraction": 0.5}},
             {"name": "kd"}]
    trainer, ctx, stack = make_trainer(zoo, specs, total_steps=2)
    assert [s.name for s in stack.stages()] == ["hint", "ce"]
    logged = trainer.train_step(0)  # hint stage: the hint alone, no label term, no kd from the other member
    assert set(logged) == {"hint", "loss"}
    net = ctx.student.net
    assert all(p.grad is not None for p in net.stages[0].parameters())
    assert all(p.grad is None for p in [*net.stages[1].parameters(), *net.pre_head.parameters(), *net.fc.parameters()])
    assert all(p.grad is not None for p in stack.members[0].regressor.parameters())
    logged = trainer.train_step(1)  # stage 2: labels (weight 1 - alpha of kd) plus kd, no hint
    assert set(logged) == {"label", "kd", "loss"}
    assert stack.label_weight == pytest.approx(0.1)
    assert all(p.grad is None for p in stack.members[0].regressor.parameters())


def test_fitnet_with_kd_stage_refuses_a_second_kd(zoo):
    with pytest.raises(ConfigError, match="fitnet already ends with KD"):
        make_trainer(zoo, [{"name": "fitnet"}, {"name": "kd"}], total_steps=2)


def test_regressor_is_checkpointed_and_resumes_exactly(zoo, tmp_path):
    specs = [{"name": "fitnet", "params": {"hint_fraction": 0.75}}]  # steps 0-2 hint, step 3 kd
    whole, _, whole_stack = make_trainer(zoo, specs, total_steps=4)
    for step in range(4):
        whole.train_step(step)
    first, _, _ = make_trainer(zoo, specs, total_steps=4)
    for step in range(2):
        first.train_step(step)
    save_checkpoint(first.state(2, {"val": None}), tmp_path / "checkpoint.pt")
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"members.0.regressor.weight", "members.0.regressor.bias"} <= set(ckpt["strategy"])
    resumed, ctx, stack = make_trainer(zoo, specs, total_steps=4, seed=123)  # different initial weights
    assert resumed.restore(ckpt)[0] == 2
    for step in range(2, 4):
        resumed.train_step(step)
    for (k, a), b in zip(whole_stack.state_dict().items(), stack.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    for (k, a), b in zip(whole.ctx.student.state_dict().items(), ctx.student.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def distill_cli(tmp_path, teacher, student, strategy, *extra):
    args = ["distill", "--teacher", teacher, "--student", student, "--strategy", strategy, "--data", "mnist5k",
            "--labels-per-class", "5", "--steps", "2", "--threads", "1", "--no-progress", "--out", str(tmp_path),
            "--name", strategy, "--set", "teacher_train.epochs=0.05", *extra]
    assert main(args) == 0
    return tmp_path / strategy


@pytest.mark.slow
def test_cli_runs_across_families_and_exports_no_strategy_parts(tmp_path):
    vit = ["--set", "student.kwargs.img_size=28", "--set", "student.kwargs.patch_size=7"]
    run = distill_cli(tmp_path, "test_resnet", "test_vit", "fitnet", *vit, "--set", "strategy.fitnet.hint_fraction=0.5")
    assert json.loads((run / "summary.json").read_text())["seeds"]["0"]["strategy_params"] > 0
    ckpt = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    assert {k for k in ckpt["strategy"]} == {"members.0.regressor.weight", "members.0.regressor.bias"}
    from safetensors.torch import load_file

    exported = load_file(str(run / "seed-0" / "student.safetensors"))
    assert {f"net.{k}" for k in exported} == set(ckpt["student"]) and not any("regressor" in k for k in exported)

    vit_teacher = ["--set", "teacher.kwargs.img_size=28", "--set", "teacher.kwargs.patch_size=7"]
    distill_cli(tmp_path, "test_vit", "test_resnet", "at", *vit_teacher)
    run = distill_cli(tmp_path, "lenet5", "test_efficientnet", "pooled-feature+kd")
    ckpt = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    assert "members.0.projector.weight" in ckpt["strategy"]  # 84-d lenet5 pre-logits vs efficientnet's 256
    exported = load_file(str(run / "seed-0" / "student.safetensors"))
    assert not any("projector" in k for k in exported)


def test_cli_unmatched_layer_is_one_line_naming_the_layers(tmp_path, capsys):
    code = main(["distill", "--teacher", "lenet5", "--student", "lenet5", "--strategy", "at", "--data", "digits",
                 "--steps", "1", "--no-progress", "--out", str(tmp_path / "r"), "--set", "teacher_train.epochs=0.1",
                 "--set", "teacher.input_size=[16,16]", "--set", "student.input_size=[16,16]",
                 "--set", "strategy.at.pairs=[[stages.1, blocks.9]]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "student layer 'blocks.9' not found in 'lenet5'; available layers: 0=stages.0 [6x8x8], 1=stages.1 [16x2x2]" in err
    assert not list((tmp_path / "r").glob("*/*"))  # no run directory left behind
