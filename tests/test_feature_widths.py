"""Feature widths come from what a model outputs; a model too deep for its input fails before training."""

import pytest

from kdzoo.config import ModelConfig
from kdzoo.contract.errors import ConfigError
from kdzoo.models.wrapper import create_model
from kdzoo.testing import check_strategy


def build(name, zoo, size, **kwargs):
    return create_model(ModelConfig(name, input_size=size, **kwargs), num_classes=10, data_shape=(1, 28, 28),
                        data_mean=None, data_std=None, classes=[str(i) for i in range(10)], task="classification",
                        zoo=zoo)


def test_pooled_width_is_measured_not_num_features(zoo):
    model = build("lcnet_035", zoo, [32, 32])
    assert model.net.num_features == 176 and model.num_features == 1280  # head_hidden_size, what pooled gives


@pytest.mark.parametrize("strategy", ["pooled-feature", "projected-feature"])
def test_pre_logits_wider_than_num_features_trains(zoo, strategy):
    logged = check_strategy(strategy, teacher=ModelConfig("test_resnet"),
                            student=ModelConfig("lcnet_035", input_size=[32, 32]), zoo=zoo)
    assert logged["loss"] > 0


def test_model_too_deep_for_its_input_fails_with_one_line(zoo):
    with pytest.raises(ConfigError) as err:
        build("test_convnext", zoo, [28, 28])
    message = str(err.value)
    assert "'test_convnext'" in message and "1x28x28" in message and "input_size" in message and "\n" not in message
