"""Layer pairs: automatic by reduction (CNNs) or depth (ViT/MLP), explicit by name or index, clear errors."""

from __future__ import annotations

import pytest
import torch

from kdzoo import ConfigError
from kdzoo.config import ModelConfig
from kdzoo.models.wrapper import create_model
from kdzoo_feature.attention import at_pairs
from kdzoo_feature.fitnet import fitnet_pair
from kdzoo_feature.layers import feature_layers

VIT = ModelConfig("test_vit", {"img_size": 28, "patch_size": 7})


@pytest.fixture(scope="module")
def models():
    from kdzoo.zoo.plugins import load_zoo

    zoo = load_zoo()
    torch.set_num_threads(1)

    def make(cfg: ModelConfig):
        return create_model(cfg, num_classes=10, data_shape=(1, 28, 28), data_mean=None, data_std=None,
                            classes=[str(i) for i in range(10)], task="classification", zoo=zoo)

    return {"resnet": make(ModelConfig("test_resnet")), "lenet": make(ModelConfig("lenet5")), "vit": make(VIT),
            "mlp": make(ModelConfig("mlp", {"hidden": [64, 32]})), "linear": make(ModelConfig("linear"))}


def names(pairs):
    return [(t.module, s.module) for t, s in pairs]


def test_layers_have_exact_shapes_and_vit_tokens_are_a_grid(models):
    vit = feature_layers(models["vit"])
    assert [layer.shape for layer in vit] == [(64, 4, 4)] * 6  # 16 patch tokens, class token dropped
    assert [layer.shape for layer in feature_layers(models["lenet"])] == [(6, 14, 14), (16, 5, 5)]
    assert [layer.shape for layer in feature_layers(models["mlp"])] == [(64,), (32,)]
    assert feature_layers(models["linear"]) == []


def test_cnn_pairs_match_by_reduction(models):
    h, g = fitnet_pair(models["resnet"], models["lenet"], "auto", "auto")
    assert (h.module, g.module) == ("layer1", "stages.1")  # both at reduction 4
    assert names(at_pairs(models["resnet"], models["lenet"], "auto", 3)) == [("act1", "stages.0"), ("layer1", "stages.1")]


def test_pairs_across_families_match_by_depth_both_ways(models):
    h, g = fitnet_pair(models["resnet"], models["vit"], "auto", "auto")
    assert (h.module, g.module) == ("layer2", "blocks.3")
    h, g = fitnet_pair(models["vit"], models["resnet"], "auto", "auto")
    assert (h.module, g.module) == ("blocks.3", "layer2")
    assert names(at_pairs(models["resnet"], models["vit"], "auto", 3)) == [
        ("layer1", "blocks.1"), ("layer2", "blocks.3"), ("layer3", "blocks.5")]
    assert len(at_pairs(models["vit"], models["resnet"], "auto", 3)) == 3


def test_explicit_layers_by_name_and_index(models):
    h, g = fitnet_pair(models["resnet"], models["vit"], "layer3", -1)
    assert (h.module, g.module) == ("layer3", "blocks.5")
    assert names(at_pairs(models["resnet"], models["lenet"], [[0, "stages.0"], ["layer2", 1]], 3)) == [
        ("act1", "stages.0"), ("layer2", "stages.1")]


@pytest.mark.parametrize("call, needle", [
    (lambda m: fitnet_pair(m["resnet"], m["lenet"], "layer9", "auto"),
     "teacher hint layer 'layer9' not found in 'test_resnet'; available layers: 0=act1 [32x14x14], 1=layer1"),
    (lambda m: fitnet_pair(m["resnet"], m["lenet"], "auto", 5),
     "student guided layer 5 not found in 'lenet5'; available layers: 0=stages.0 [6x14x14], 1=stages.1 [16x5x5]"),
    (lambda m: at_pairs(m["resnet"], m["lenet"], [["act1", "stages.7"]], 3), "available layers: 0=stages.0"),
    (lambda m: at_pairs(m["resnet"], m["mlp"], "auto", 3), "attention transfer needs spatial feature maps"),
    (lambda m: at_pairs(m["resnet"], m["mlp"], [[1, 0]], 3), "layer 0=stages.0 [64] of 'mlp' is a vector"),
    (lambda m: fitnet_pair(m["resnet"], m["linear"], "auto", "auto"), "'linear' exposes no intermediate features"),
])
def test_unmatched_layers_give_a_clear_error(models, call, needle):
    with pytest.raises(ConfigError) as err:
        call(models)
    assert needle in str(err.value)


def test_vector_features_get_a_linear_regressor(models):
    h, g = fitnet_pair(models["resnet"], models["mlp"], "auto", "auto")
    assert g.module == "stages.1" and not g.is_map and h.is_map
