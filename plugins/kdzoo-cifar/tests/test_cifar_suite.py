"""The ``cifar100-mdistiller`` suite: ``kdzoo bench --list`` expands to the published tables' rows, each
pair carries its published accuracies, and the recipe is mdistiller's."""

from __future__ import annotations

import re

from kdzoo.bench.suite import load_suite
from kdzoo.cli import main

# (teacher, student) -> method -> published top-1 (%) (RepDistiller README; DKD: mdistiller README;
# ReviewKD: mdistiller .github/dkd.png), as tabulated in the project's research notes
PUBLISHED = {
    ("resnet32x4", "resnet8x4"): {"kd": 73.33, "fitnet": 73.50, "at": 73.44, "crd": 75.51, "dkd": 76.32,
                                  "reviewkd": 75.63},
    ("wrn-40-2", "wrn-16-2"): {"kd": 74.92, "fitnet": 73.58, "at": 74.08, "crd": 75.48, "dkd": 76.23},
    ("wrn-40-2", "wrn-40-1"): {"kd": 73.54, "fitnet": 72.24, "at": 72.77, "crd": 74.14, "dkd": 74.81},
    ("resnet56", "resnet20"): {"kd": 70.66, "fitnet": 69.21, "at": 70.55, "crd": 71.16, "dkd": 71.97},
    ("resnet110", "resnet32"): {"kd": 73.08, "fitnet": 71.06, "at": 72.31, "crd": 73.48, "dkd": 74.11},
    ("vgg13-cifar", "vgg8-cifar"): {"kd": 72.98, "fitnet": 71.02, "at": 71.43, "crd": 73.94, "dkd": 74.68},
    ("resnet32x4", "shufflev1"): {"kd": 74.07, "fitnet": 73.59, "at": 71.73, "crd": 75.11, "dkd": 76.45},
    ("wrn-40-2", "shufflev1"): {"kd": 74.83, "fitnet": 73.73, "at": 73.32, "crd": 76.05, "dkd": 76.70},
    ("vgg13-cifar", "mobilenetv2-cifar"): {"kd": 67.37, "fitnet": 64.14, "at": 59.40, "crd": 69.73, "dkd": 69.71},
    ("resnet50-cifar", "mobilenetv2-cifar"): {"kd": 67.35, "fitnet": 63.16, "at": 58.58, "crd": 69.11, "dkd": 70.35},
    ("resnet32x4", "shufflev2"): {"kd": 74.45, "fitnet": 73.54, "at": 72.73, "crd": 75.65, "dkd": 77.07},
}
LINE = re.compile(r"^[0-9a-f]{16}  (?P<task>[^|]+) \| (?P<t>\S+) -> (?P<s>\S+) \| (?P<v>\S+) \| seed (?P<seed>\d+)  \[")


def test_list_expands_to_every_published_row_over_five_seeds(tmp_path, capsys, zoo):
    assert main(["bench", "--suite", "cifar100-mdistiller", "--list", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [LINE.match(line).groupdict() for line in lines if LINE.match(line)]
    rows: dict[tuple[str, str], dict[str, set[int]]] = {}
    for c in cells:
        method = c["v"].split("(")[0]
        rows.setdefault((c["t"], c["s"]), {}).setdefault(method, set()).add(int(c["seed"]))
    assert set(rows) == set(PUBLISHED)
    for pair, methods in PUBLISHED.items():
        assert set(rows[pair]) == {"ce", *methods}, pair
        assert all(seeds == {0, 1, 2, 3, 4} for seeds in rows[pair].values()), pair
    assert lines[-1].startswith(f"bench cifar100-mdistiller: {len(cells)} cells")


def test_each_pair_stores_its_published_accuracies_and_the_recipe_is_mdistillers():
    suite = load_suite("cifar100-mdistiller")
    for task in suite["tasks"]:
        lr = 0.01 if task["name"] == "heterogeneous" else 0.05
        assert task["optim"] == {"name": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step",
                                 "milestones": [150 / 240, 180 / 240, 210 / 240], "gamma": 0.1}
        assert task["epochs"] == 240 and task["data"]["batch_size"] == 64 and task["data"]["name"] == "cifar100"
        for pair in task["pairs"]:
            key = (pair["teacher"]["name"], pair["student"]["name"])
            published = {k: v for k, v in pair["published"].items() if k not in ("teacher", "student")}
            assert published.items() <= PUBLISHED[key].items(), key
            methods = {(s if isinstance(s, str) else s["name"]) for s in task["strategies"]}
            assert set(published) == methods, key
    students = {p["student"]["name"] for t in suite["tasks"] if t["name"] == "heterogeneous" for p in t["pairs"]}
    assert students == {"shufflev1", "shufflev2", "mobilenetv2-cifar"}


def write_tiny_cifar100(root, n_train=60, n_test=20, classes=5):
    """A CIFAR-100 root in torchvision's python layout (``cifar-100-python/{train,test,meta}``), random pixels."""
    import hashlib
    import pickle

    import numpy as np

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(classes)]
    for split, n in (("train", n_train), ("test", n_test)):
        entry = {"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                 "fine_labels": [i % classes for i in range(n)], "coarse_labels": [0] * n}
        (folder / split).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": ["all"]}))
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in ("train", "test", "meta")}


def test_one_step_at_batch_2_on_a_tiny_cifar100_root(tmp_path, monkeypatch):
    """CI's check of the kit end to end: data from a CIFAR-format root, the kit's models, kd/crd/reviewkd."""
    from torchvision.datasets import CIFAR100

    md5 = write_tiny_cifar100(tmp_path / "cifar")
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])  # torchvision checks the files' md5
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", dict(CIFAR100.meta, md5=md5["meta"]))
    for strategy in ("kd", "crd", "reviewkd"):
        args = ["distill", "--teacher", "resnet32x4", "--student", "resnet8x4", "--strategy", strategy,
                "--data", "cifar100", "--data-root", str(tmp_path / "cifar"), "--steps", "1", "--threads", "1",
                "--no-progress", "--out", str(tmp_path / "runs"), "--name", strategy,
                "--set", "data.batch_size=2", "--set", "teacher_train.epochs=0.05", "--set", "data.val_fraction=0.2"]
        assert main(args) == 0
        summary = (tmp_path / "runs" / strategy / "seed-0" / "summary.json")
        assert summary.exists()


def test_cifar_kit_benchmark_one_step_at_batch_2_for_one_pair():
    """benchmarks/cifar_kit.py on one pair's rows (the full sweep is the script itself)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "cifar_kit.py"
    spec = importlib.util.spec_from_file_location("cifar_kit", path)
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    assert kit.main(["--steps", "1", "--batch", "2", "--n", "1000", "--threads", "1", "--device", "cpu",
                     "--only", "resnet56 -> resnet20"]) == 0
