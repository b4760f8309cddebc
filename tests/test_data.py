"""Data: splits, label budgets, the batch plan, ImageFolder, and regression."""

import json

import numpy as np
import pytest
import torch

from kdzoo.cli import main
from kdzoo.config import DataConfig
from kdzoo.data import BatchPlan, load_dataset, make_splits


def test_mnist5k_split_is_stratified_despite_sorted_rows(zoo):
    bundle = load_dataset("mnist5k", None, zoo)
    s = make_splits(bundle, DataConfig(name="mnist5k"))
    y = bundle.y.numpy()
    for part in (s.train, s.val, s.test):
        counts = np.bincount(y[part], minlength=10)
        assert counts.min() >= counts.max() - 1
    assert not (set(s.train) & set(s.val) or set(s.train) & set(s.test) or set(s.val) & set(s.test))


def test_split_depends_on_split_seed_only(zoo):
    bundle = load_dataset("digits", None, zoo)
    a = make_splits(bundle, DataConfig(name="digits", split_seed=1))
    b = make_splits(bundle, DataConfig(name="digits", split_seed=1))
    c = make_splits(bundle, DataConfig(name="digits", split_seed=2))
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_labels_per_class_and_batch_ratio(zoo):
    bundle = load_dataset("digits", None, zoo)
    cfg = DataConfig(name="digits", labels_per_class=10, batch_size=40, labelled_ratio=0.25)
    s = make_splits(bundle, cfg)
    assert len(s.labelled) == 100 and np.bincount(bundle.y.numpy()[s.labelled]).tolist() == [10] * 10
    assert len(s.labelled) + len(s.unlabelled) == len(s.train)
    with_unl = BatchPlan(bundle, s, cfg, seed=0, use_unlabelled=True).batch(3)
    without = BatchPlan(bundle, s, cfg, seed=0, use_unlabelled=False).batch(3)
    assert with_unl.size == 40 and int(with_unl.labelled.sum()) == 10
    assert (with_unl.y[~with_unl.labelled] == -1).all()
    assert set(with_unl.index[with_unl.labelled].tolist()) <= set(s.labelled.tolist())
    assert set(with_unl.index[~with_unl.labelled].tolist()) <= set(s.unlabelled.tolist())
    # the labelled stream is identical whether or not the strategy uses unlabelled data
    assert torch.equal(without.index, with_unl.index[with_unl.labelled])


def test_batch_plan_is_a_pure_function_of_seed_and_step(zoo):
    bundle = load_dataset("digits", None, zoo)
    cfg = DataConfig(name="digits", augment="shift")
    s = make_splits(bundle, cfg)
    a, b = BatchPlan(bundle, s, cfg, 5, False), BatchPlan(bundle, s, cfg, 5, False)
    for step in (7, 0, 30):
        assert torch.equal(a.batch(step).x, b.batch(step).x)
    assert not torch.equal(a.batch(1).index, BatchPlan(bundle, s, cfg, 6, False).batch(1).index)
    seen = torch.cat([a.batch(i).index for i in range(len(s.train) // cfg.batch_size)])
    assert len(set(seen.tolist())) == len(seen)  # one epoch: no sample twice


def write_imagefolder(root, split=None):
    from PIL import Image

    for c, name in enumerate(["cat", "dog", "emu"]):
        for i in range(8):
            folder = (root / split / name) if split else (root / name)
            folder.mkdir(parents=True, exist_ok=True)
            arr = np.full((12, 10, 3), 40 * c + 3 * i, dtype=np.uint8)
            Image.fromarray(arr).save(folder / f"{i}.png")


@pytest.mark.parametrize("with_splits", [False, True])
def test_imagefolder_end_to_end(tmp_path, zoo, capsys, with_splits):
    root = tmp_path / "imgs"
    if with_splits:
        write_imagefolder(root, "train")
        write_imagefolder(root, "test")
    else:
        write_imagefolder(root)
    bundle = load_dataset(f"imagefolder:{root}", None, zoo)
    assert bundle.classes == ["cat", "dog", "emu"] and bundle.sample_shape == (3, 12, 10)
    assert (bundle.test_x is not None) == with_splits
    code = main(["distill", "--student", "test_resnet", "--data", f"imagefolder:{root}", "--steps", "2",
                 "--out", str(tmp_path / "runs"), "--name", "r", "--no-progress", "--set", "data.batch_size=8",
                 "--set", "data.val_fraction=0.25", "--set", "data.test_fraction=0.25"])
    assert code == 0
    capsys.readouterr()
    exported = tmp_path / "runs" / "r" / "seed-0" / "student.safetensors"
    assert main(["eval", str(exported), "--data", f"imagefolder:{root}", "--split", "val"] if not with_splits else
                ["eval", str(exported), "--data", f"imagefolder:{root}"]) == 0
    assert "acc" in json.loads(capsys.readouterr().out)


def test_regression_distillation_into_linear_and_mlp(tmp_path, capsys):
    for student, strategy in [("linear", "regression-kd"), ("mlp", "ce")]:
        code = main(["distill", "--teacher", "mlp", "--student", student, "--strategy", strategy, "--data", "diabetes",
                     "--epochs", "3", "--out", str(tmp_path), "--name", f"{student}-{strategy}", "--no-progress",
                     "--set", "teacher_train.epochs=5", "--set", "data.batch_size=32"])
        assert code == 0
        summary = json.loads((tmp_path / f"{student}-{strategy}" / "summary.json").read_text())
        assert summary["metric"] == "mse"
        test = summary["seeds"]["0"]["test_best"]
        assert set(test) == {"mse", "mae"} and test["mae"] > 0


def test_distilling_into_linear_learns(tmp_path):
    import kdzoo

    result = kdzoo.distill({"teacher": {"name": "mlp", "kwargs": {"hidden": [128]}}, "student": "linear",
                            "strategy": "kd", "data": {"name": "digits"}, "teacher_train": {"epochs": 10},
                            "train": {"epochs": 20}, "optim": {"lr": 0.02}, "runtime": {"progress": False}, "out": str(tmp_path), "name": "lin"},
                           log=lambda *a: None)
    mean, _ = result.mean_std()
    assert mean > 85.0  # logistic regression on digits reaches ~95%; chance is 10%
