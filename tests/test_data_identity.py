"""Bench cells keyed by what their data is (a fingerprint of its files), not where it lies."""

import gzip
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from kdzoo.bench.suite import expand_all, run_bench
from kdzoo.data.fingerprint import data_fingerprint
from kdzoo.train.effective import cell_key, legacy_cell_keys
from kdzoo.zoo.plugins import load_zoo


def write_idx(folder, n_train=120, n_test=40, seed=0):
    """Four tiny Fashion-MNIST-shaped IDX files (28x28 grey, 10 classes), the test split gzipped."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, opener in (("train", n_train, open), ("t10k", n_test, gzip.open)):
        y = np.arange(n, dtype=np.uint8) % 10
        x = (rng.random((n, 28, 28)) * 60 + y[:, None, None] * 19).astype(np.uint8)
        suffix = ".gz" if opener is gzip.open else ""
        with opener(folder / f"{split}-images-idx3-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">HBB3I", 0, 0x08, 3, n, 28, 28) + x.tobytes())
        with opener(folder / f"{split}-labels-idx1-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 0x08, 1, n) + y.tobytes())
    return folder


SUITE = {
    "name": "fm-tiny", "seeds": [0],
    "tasks": [{
        "name": "fm", "data": {"name": "fashion-mnist", "root": "/nowhere", "val_fraction": 0.2}, "steps": 4,
        "teacher_train": {"epochs": 1},
        "pairs": [{"teacher": {"name": "mlp", "kwargs": {"hidden": [16]}}, "student": {"name": "linear"}}],
        "strategies": ["ce", "kd"],
    }],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_idx(tmp_path_factory.mktemp("fm") / "fashion")


def suite_file(tmp_path, root):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(dict(SUITE, tasks=[dict(SUITE["tasks"][0], data=dict(SUITE["tasks"][0]["data"],
                                                                                              root=str(root)))])))
    return str(path)


def test_fingerprint_follows_content_not_place(data, tmp_path):
    copy = shutil.copytree(data, tmp_path / "elsewhere" / "fm")
    same = data_fingerprint("fashion-mnist", str(data))
    assert same is not None and len(same) == 16
    assert data_fingerprint("fashion-mnist", str(data) + "/") == same
    assert data_fingerprint("fashion-mnist", str(copy)) == same
    assert data_fingerprint("digits", None) is None  # shipped in the package: nothing of the user's to hash
    assert data_fingerprint("fashion-mnist", str(tmp_path / "missing")) is None
    (copy / "train-labels-idx1-ubyte").write_bytes((copy / "train-labels-idx1-ubyte").read_bytes()[:-1] + b"\x03")
    assert data_fingerprint("fashion-mnist", str(copy)) != same
    cache = json.loads((Path(os.environ["KDZOO_CACHE"]) / "data-fingerprints" / "hashes.json").read_text())
    assert str((copy / "train-labels-idx1-ubyte").resolve()) in cache  # cached by path, size and mtime


def test_a_moved_copy_or_a_trailing_slash_reuses_every_finished_cell(data, tmp_path):
    out = tmp_path / "bench"
    logs = []
    first = run_bench(suite_file(tmp_path, data), out, progress=False, log=logs.append)
    assert "2 to run" in logs[0]
    for root in (str(data) + "/", shutil.copytree(data, tmp_path / "moved" / "x")):
        logs = []
        again = run_bench(suite_file(tmp_path, root), out, progress=False, log=logs.append)
        assert "2 reused, 0 to run" in logs[0], logs
        assert [r["test_best_acc"] for r in again["rows"]] == [r["test_best_acc"] for r in first["rows"]]


def test_cells_finished_under_path_keys_are_adopted(data, tmp_path):
    out = tmp_path / "bench"
    path = suite_file(tmp_path, data)
    first = run_bench(path, out, progress=False, log=lambda *a: None)
    zoo = load_zoo()
    suite = yaml.safe_load(open(path))
    cells, _ = expand_all(suite, zoo, out)
    folder = out / "cells"
    for cell in cells:  # as a bench of the previous version wrote them: keyed by data.root
        old = cell_key(cell.config, zoo, data_by_path=True, losses_file=True)
        assert old in legacy_cell_keys(cell.config, zoo) and old != cell.key
        (folder / cell.key).rename(folder / old)
    logs = []
    again = run_bench(path, out, progress=False, log=logs.append)
    assert logs[0].startswith("2 finished cells kept") and "2 reused, 0 to run" in logs[1]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(c.key for c in cells)
    assert [r["test_best_acc"] for r in again["rows"]] == [r["test_best_acc"] for r in first["rows"]]


def test_changed_data_reruns_and_bundled_data_keeps_its_keys(data, tmp_path):
    zoo = load_zoo()
    other = write_idx(tmp_path / "other", seed=1)
    keys = {root: {c.key for c in expand_all(yaml.safe_load(open(suite_file(tmp_path, root))), zoo, tmp_path)[0]}
            for root in (data, other)}
    assert not keys[data] & keys[other]
    digits = expand_all({"name": "d", "tasks": [dict(SUITE["tasks"][0], data={"name": "digits"})]}, zoo, tmp_path)[0]
    assert all(cell_key(c.config, zoo, data_by_path=True) == c.key for c in digits)  # no files: key as before


def test_an_image_folder_is_keyed_by_its_files_not_its_path(tmp_path):
    from kdzoo.config import make_config
    from kdzoo.train.effective import effective_config
    from kdzoo.zoo.stack import resolve_stack

    for where in ("a", "b"):
        for cls in ("cat", "dog"):
            (tmp_path / where / cls).mkdir(parents=True)
            (tmp_path / where / cls / "1.png").write_bytes(cls.encode() * 10)
    zoo = load_zoo()

    def keyed(folder):
        config = make_config({"data": {"name": f"imagefolder:{folder}:parity"}, "strategy": "ce"})
        return effective_config(config, resolve_stack(config.strategy, zoo), for_key=True)

    a, b = keyed(tmp_path / "a"), keyed(str(tmp_path / "b") + "/")
    assert a == b and a["data"]["name"] == "imagefolder:parity" and "root" not in a["data"]
    (tmp_path / "b" / "dog" / "2.png").write_bytes(b"new")
    assert keyed(tmp_path / "b")["data_files"] != a["data_files"]
