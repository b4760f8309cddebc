"""Shared helpers of the kdzoo-init tests: models built as kdzoo builds them, teachers with distinct values."""

from __future__ import annotations

import torch

from kdzoo.config import ModelConfig
from kdzoo.models.wrapper import create_model

CLASSES = [str(i) for i in range(10)]


def build(zoo, name, kwargs=None, shape=(1, 28, 28), input_size=None):
    return create_model(ModelConfig(name, dict(kwargs or {}), input_size=input_size), num_classes=10, data_shape=shape,
                        data_mean=None, data_std=None, classes=CLASSES, task="classification", zoo=zoo)


def scramble(model):
    """Give every teacher tensor distinct values (BN running stats included), so slices are checkable."""
    torch.manual_seed(1)
    with torch.no_grad():
        for key, t in model.net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t).abs() + 0.1 if "running_var" in key else torch.randn_like(t))
    return model
