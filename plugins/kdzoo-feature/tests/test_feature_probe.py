"""The teacher-feature probe: a linear classifier on frozen teacher features, with its cost."""

from __future__ import annotations

import torch

from kdzoo.config import DataConfig, ModelConfig
from kdzoo.data import make_splits
from kdzoo.models.wrapper import create_model
from kdzoo.testing import tiny_bundle
from kdzoo_feature.probe import teacher_feature_probe


def test_probe_reports_accuracy_and_inference_cost_beside_the_student(zoo):
    bundle = tiny_bundle(n=96)
    splits = make_splits(bundle, DataConfig(name="tiny", labels_per_class=8))

    def build(cfg):
        return create_model(cfg, num_classes=4, data_shape=bundle.sample_shape, data_mean=None, data_std=None,
                            classes=bundle.classes, task="classification", zoo=zoo)

    torch.manual_seed(0)
    teacher, student = build(ModelConfig("lenet5")), build(ModelConfig("mlp", {"hidden": [8]}))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    report = teacher_feature_probe(teacher, bundle, splits, student=student, cs=(1.0,), timing_images=16)
    probe, stud = report["probe"], report["student"]
    assert 0.0 <= probe["test_acc"] <= 100.0 and probe["labelled"] == 32 and probe["C"] == 1.0
    assert probe["feature_dim"] == 84  # lenet5's pre-logit width
    assert probe["params"] == sum(p.numel() for p in teacher.net.parameters()) + 84 * 4 + 4
    assert probe["ms_per_image"] > 0 and stud["ms_per_image"] > 0
    assert stud["params"] == sum(p.numel() for p in student.net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())  # the teacher stays frozen


def test_folded_linear_probe_predicts_as_scikit_learn():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from kdzoo_feature.probe import fit_probe

    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(60, 5)).astype(np.float32) * 3 + 1, rng.integers(0, 3, 60)
    linear, c, _ = fit_probe(f[:40], y[:40], f[40:], y[40:], (0.1,), num_classes=5)
    scaler = StandardScaler().fit(f[:40])
    expected = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(f[:40]), y[:40]).predict(scaler.transform(f))
    with torch.no_grad():
        assert (linear(torch.from_numpy(f)).argmax(1).numpy() == expected).all()
    two = np.where(y[:40] == 1, 2, 0)  # two of five classes labelled: a binary fit, the rest never predicted
    linear, _, _ = fit_probe(f[:40], two, f[40:], y[40:], (1.0,), num_classes=5)
    with torch.no_grad():
        assert set(linear(torch.from_numpy(f)).argmax(1).tolist()) <= {0, 2}
