"""A tiny in-memory run (as ``kdzoo.testing.check_strategy`` builds one) for the data-free tests."""

from __future__ import annotations

from typing import Any

import torch

from kdzoo.config import DataConfig, ModelConfig, RunConfig, StrategySpec, TrainConfig
from kdzoo.contract.context import RunContext
from kdzoo.data import make_splits
from kdzoo.models.wrapper import create_model
from kdzoo.zoo.stack import build_stack
from kdzoo.testing import tiny_bundle
from kdzoo.train.trainer import Trainer, freeze


def tiny_run(name: str, params: dict[str, Any] | None = None, *, steps: int = 4, teacher_bn: bool = True,
             zoo=None, run_dir=None, teacher=None) -> tuple[Trainer, RunContext]:
    """A trainer for ``name`` on 16x16 images: BN lenet5 teacher (frozen by the trainer), half lenet5 student."""
    from kdzoo.zoo.plugins import load_zoo

    zoo = zoo or load_zoo()
    bundle = tiny_bundle()
    config = RunConfig(student=ModelConfig("lenet5", {"width": 0.5}), teacher=ModelConfig("lenet5", {"batchnorm": teacher_bn}),
                       strategy=[StrategySpec(name, dict(params or {}))], data=DataConfig(name="tiny", batch_size=8),
                       train=TrainConfig(steps=steps, epochs=None))
    splits = make_splits(bundle, config.data)

    def build(cfg: ModelConfig):
        return create_model(cfg, num_classes=4, data_shape=bundle.sample_shape, data_mean=[0.2], data_std=[0.3],
                            classes=bundle.classes, task="classification", zoo=zoo)

    torch.manual_seed(0)
    if teacher is None:
        teacher = build(config.teacher)
        teacher.train()  # left in train mode on purpose: the trainer must freeze it
    student = build(config.student)
    ctx = RunContext(config=config, student=student, teacher=teacher, task="classification", classes=bundle.classes,
                     data_shape=bundle.sample_shape, seed=0, device=torch.device("cpu"), total_steps=steps,
                     steps_per_epoch=steps, zoo=zoo, bundle=bundle, splits=splits, run_dir=run_dir)
    stack = build_stack(config.strategy, ctx, zoo)
    trainer = Trainer(ctx, stack, None, source=stack.data_source(ctx))
    return trainer, ctx


def frozen_teacher():
    """A BN teacher with non-trivial running statistics, as ``tiny_run`` builds it."""
    trainer, ctx = tiny_run("noise-kd", steps=1)
    teacher = ctx.teacher
    with torch.no_grad():
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return freeze(teacher)
