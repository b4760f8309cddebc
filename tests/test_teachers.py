"""Teachers from local files (read by kdzoo.models.weights) and from kdzoo's cache."""

import json
import struct

import numpy as np
import pytest
import torch

from kdzoo.cli import main


def test_teacher_from_a_plain_timm_checkpoint(tmp_path, capsys):
    import timm

    torch.manual_seed(3)
    net = timm.create_model("test_resnet", num_classes=10, in_chans=1)
    path = tmp_path / "teacher.pth"
    torch.save({"state_dict": net.state_dict()}, path)  # no kdzoo metadata: a user's own checkpoint
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"teacher: {{name: test_resnet, checkpoint: {path}}}\nstudent: linear\nstrategy: kd\n"
                   "data: digits\ntrain: {steps: 2}\nruntime: {progress: false}\n")
    assert main(["distill", "-c", str(cfg), "--out", str(tmp_path / "runs"), "--name", "r"]) == 0
    summary = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())
    assert summary["teacher"]["meta"]["name"] == "test_resnet"
    # a checkpoint of another architecture is refused, not silently half-loaded
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("name: test_resnet", "name: test_efficientnet"))
    capsys.readouterr()
    assert main(["distill", "-c", str(bad), "--out", str(tmp_path / "runs"), "--name", "bad"]) == 2
    assert not (tmp_path / "runs" / "bad").exists()


def test_teacher_is_trained_once_and_cached(tmp_path, capsys):
    # a recipe (teacher seed 7) no other test trains, so the session's teacher cache cannot have it yet
    args = ["teacher", "--teacher", "mlp", "--data", "digits", "--set", "teacher_train.seed=7", "--epochs", "2",
            "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr()  # logs on stderr, the JSON alone on stdout
    assert "training on the full train split" in first.err
    assert main(args) == 0
    second = capsys.readouterr()
    assert "cached" in second.err and json.loads(second.out)["val"]["acc"] > 50
    assert main(args[:-3] + ["--epochs", "3", "--no-progress"]) == 0  # another recipe: another teacher
    assert "training on the full train split" in capsys.readouterr().err


def write_idx(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_a_local_root_never_downloads(tmp_path, zoo):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    from kdzoo.data import load_dataset

    bundle = load_dataset("mnist", str(tmp_path), zoo)
    assert bundle.x.shape == (60, 1, 28, 28) and bundle.test_x.shape == (20, 1, 28, 28)
    assert bundle.classes[0].startswith("0")
    with pytest.raises(Exception, match="never downloads"):
        load_dataset("fashion_mnist", str(tmp_path), zoo)
