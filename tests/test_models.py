"""Models: reload-equals, timm reading kdzoo exports, registered models, input adaptation."""

import pytest
import torch

from kdzoo.config import ModelConfig
from kdzoo.contract.errors import ConfigError
from kdzoo.models.wrapper import create_model, load_model, save_model

CLASSES = [str(i) for i in range(7)]


def build(zoo, name, shape=(1, 28, 28), **kwargs):
    return create_model(ModelConfig(name, kwargs), num_classes=7, data_shape=shape, data_mean=[0.2], data_std=[0.3],
                        classes=CLASSES, task="classification", zoo=zoo)


@pytest.mark.parametrize("name, kwargs", [("test_resnet", {}), ("test_efficientnet", {}),
                                          ("test_vit", {"img_size": 28, "patch_size": 4}),
                                          ("lenet5", {"batchnorm": True}), ("mlp", {"hidden": [32, 16]}), ("linear", {})])
def test_exported_model_reloads_with_identical_outputs(zoo, tmp_path, name, kwargs):
    torch.manual_seed(0)
    model = build(zoo, name, **kwargs).eval()
    x = torch.rand(4, 1, 28, 28)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    again = load_model(path, zoo).eval()
    # 7 classes and 1 input channel differ from timm's default config: the head and stem must survive
    assert torch.equal(model(x), again(x))
    assert again.meta["classes"] == CLASSES and again.meta["mean"] == [0.2]


def test_timm_itself_loads_an_export_through_pretrained_cfg_overlay(zoo, tmp_path):
    """kdzoo reads files itself; timm's own file loader still accepts its exports."""
    import timm

    model = build(zoo, "test_resnet").eval()
    path = tmp_path / "t.safetensors"
    save_model(model, path)
    direct = timm.create_model("test_resnet", pretrained=True, num_classes=7, in_chans=1,
                               pretrained_cfg_overlay=dict(file=str(path), num_classes=7, input_size=(1, 28, 28))).eval()
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(direct(model.preprocess(x)), model(x))


def test_a_silently_dropped_head_is_an_error(zoo, tmp_path):
    """timm drops the classifier when the file's class count differs from the config: we refuse."""
    from kdzoo.models.wrapper import verify_loaded

    model = build(zoo, "test_resnet")
    other = create_model(ModelConfig("test_resnet"), num_classes=7, data_shape=(1, 28, 28), data_mean=None,
                         data_std=None, classes=CLASSES, task="classification", zoo=zoo)
    with pytest.raises(ConfigError, match="was not loaded as saved"):
        verify_loaded(other.net, model.net.state_dict(), "x")


def test_inputs_are_resized_and_channels_adapted_per_model(zoo):
    vit = build(zoo, "test_vit", shape=(1, 28, 28), img_size=32, patch_size=8)
    assert vit.meta["input_shape"] == [1, 32, 32]
    assert vit(torch.rand(2, 1, 28, 28)).shape == (2, 7)
    rgb = create_model(ModelConfig("test_resnet", {"in_chans": 3}), num_classes=7, data_shape=(1, 28, 28),
                       data_mean=[0.5], data_std=[0.5], classes=CLASSES, task="classification", zoo=zoo)
    assert rgb(torch.rand(2, 1, 28, 28)).shape == (2, 7)


def test_outputs_match_plain_forward(zoo):
    from kdzoo.contract.strategy import Requirement

    for name, kw in [("test_resnet", {}), ("lenet5", {}), ("test_vit", {"img_size": 28, "patch_size": 4})]:
        model = build(zoo, name, **kw).eval()
        x = torch.rand(3, 1, 28, 28)
        out = model.outputs(x, Requirement(logits=True, pooled=True, features=(0, 1)))
        assert torch.allclose(out.logits, model(x), atol=1e-5)
        assert out.pooled.shape == (3, model.num_features) and set(out.features) == {0, 1}


def test_timm_model_on_vector_data_is_a_clear_error(zoo):
    with pytest.raises(ConfigError, match="use 'linear' or 'mlp'"):
        build(zoo, "test_resnet", shape=(10,))


def test_agreement_with_a_bf16_teacher_casts_the_inputs_to_the_teachers_dtype(zoo):
    import copy

    from kdzoo.models.evaluate import agreement

    torch.manual_seed(0)
    student = build(zoo, "mlp", hidden=[16])
    teacher = copy.deepcopy(student).to(torch.bfloat16)  # float32 inputs into it used to fail (dtype mismatch)
    x, idx = torch.rand(32, 1, 28, 28), torch.arange(32).numpy()
    assert agreement(student, teacher, x, idx, "classification", batch_size=8)["agreement"] >= 75.0
    assert next(teacher.parameters()).dtype == torch.bfloat16 and teacher.training  # dtype and mode left as found
