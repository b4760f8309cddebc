"""The streaming path and the file datasets, on tiny files the tests write themselves."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from kdzoo.config import make_config
from kdzoo.data import BatchPlan, StreamingPlan, load_dataset, make_plan, make_splits
from kdzoo.contract.errors import ConfigError
from kdzoo.testing import FORKED, finished, kill_and_resume, start_run


def write_idx(path, array, gz=True):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_idx_folder(folder, n_train=30, n_test=10, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), gz)


@pytest.mark.parametrize("layout", ["debian", "torchvision"])
def test_fashion_mnist_from_idx_files(tmp_path, zoo, layout):
    if layout == "debian":  # the four .gz files as published, in any folder
        root = tmp_path / "usr/share/datasets/fashion-mnist"
        write_idx_folder(root)
    else:  # torchvision's layout, uncompressed
        root = tmp_path
        write_idx_folder(tmp_path / "FashionMNIST" / "raw", gz=False)
    bundle = load_dataset("fashion-mnist", str(root), zoo)
    assert bundle.x.shape == (30, 1, 28, 28) and bundle.x.dtype == torch.uint8
    assert bundle.test_x.shape == (10, 1, 28, 28) and bundle.y.tolist() == [i % 10 for i in range(30)]
    assert bundle.classes[0] == "T-shirt/top" and len(bundle.classes) == 10
    splits = make_splits(bundle, make_config({"data": {"name": "fashion-mnist", "val_fraction": 0.34}}).data)
    assert splits.official_test and len(splits.test) == 10 and len(splits.val) + len(splits.train) == 30


def test_missing_idx_files_fail_with_one_line_and_never_download(tmp_path, zoo):
    with pytest.raises(ConfigError, match="never downloads unless data.download=true") as err:
        load_dataset("mnist", str(tmp_path), zoo)
    assert "\n" not in str(err.value)


def write_cifar10(root, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                  "horse", "ship", "truck"]]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=5))
    return folder


def test_cifar10_from_python_batches(tmp_path, zoo):
    write_cifar10(tmp_path)
    bundle = load_dataset("cifar10", str(tmp_path), zoo)
    assert bundle.x.shape == (20, 3, 32, 32) and bundle.test_x.shape == (4, 3, 32, 32)
    assert bundle.classes[:2] == ["airplane", "automobile"]


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_batch_with_code_is_refused(tmp_path, zoo):
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Boom(), b"labels": []}))
    with pytest.raises(ConfigError, match="not allowed in a data file"):
        load_dataset("cifar10", str(tmp_path), zoo)


def write_images(root, sizes, mode):
    for i, (w, h) in enumerate(sizes):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        colour = 200 if mode == "L" else (200, 30, 90)
        Image.new(mode, (w, h), colour).save(folder / f"{i}.png")


def test_imagefolder_keeps_sizes_and_grey_is_one_channel(tmp_path, zoo):
    mixed, grey = tmp_path / "mixed", tmp_path / "grey"
    write_images(mixed, [(20, 12), (9, 30), (16, 16), (40, 24)], "RGB")
    write_images(grey, [(12, 12), (18, 10)], "L")
    bundle = load_dataset(f"imagefolder:{mixed}", None, zoo, image_size=[10, 10])
    assert bundle.x.shape == (4, 3, 10, 10)
    assert sorted(bundle.x.pil(i).size for i in range(4)) == [(9, 30), (16, 16), (20, 12), (40, 24)]  # kept per image
    assert bundle.x[torch.tensor([1, 3])].shape == (2, 3, 10, 10)
    g = load_dataset(f"imagefolder:{grey}", None, zoo)
    assert g.x.shape[1] == 1 and g.x[[0]].shape[1] == 1 and bool((g.x[[0]] == 200).all())


def plan_for(zoo, **data):
    config = make_config({"data": {"name": "digits", "batch_size": 8, **data}})
    bundle = load_dataset("digits", None, zoo)
    return bundle, make_splits(bundle, config.data), config.data


def test_streaming_batches_are_a_pure_function_of_seed_and_step(zoo):
    bundle, splits, cfg = plan_for(zoo, loader="stream", augment="timm", auto_augment="rand-m9-mstd0.5",
                                   image_size=None, num_workers=2)
    one = make_plan(bundle, splits, cfg, seed=3, use_unlabelled=False)
    assert isinstance(one, StreamingPlan)
    steps = [one.batch(s) for s in range(4)]
    one.close()
    from dataclasses import replace

    other = make_plan(bundle, splits, replace(cfg, num_workers=0), seed=3, use_unlabelled=False)
    resumed = other.batch(2)  # a resumed run starts mid-way, in the main process
    assert torch.equal(resumed.x, steps[2].x) and torch.equal(resumed.index, steps[2].index)
    assert not torch.equal(steps[0].x, to_plain(bundle, steps[0].index))  # the images were augmented
    assert float(steps[0].x.min()) >= 0 and float(steps[0].x.max()) <= 1
    other.close()


def to_plain(bundle, index):
    return bundle.x[index].float()


def test_tensor_augmentation_streams_the_in_memory_batches(zoo):
    bundle, splits, cfg = plan_for(zoo, loader="stream", augment="shift", num_workers=1)
    streamed = make_plan(bundle, splits, cfg, seed=0, use_unlabelled=False)
    in_memory = BatchPlan(bundle, splits, cfg, 0, False)
    for step in (0, 1, 5):
        a, b = streamed.batch(step), in_memory.batch(step)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    streamed.close()


def test_mixup_gives_soft_targets_and_needs_the_streaming_path(zoo):
    bundle, splits, cfg = plan_for(zoo, loader="stream", mixup=0.4, num_workers=0)
    batch = make_plan(bundle, splits, cfg, seed=0, use_unlabelled=False).batch(0)
    assert batch.y.shape == (8, 10) and torch.allclose(batch.y.sum(1), torch.ones(8))
    _, _, memory_cfg = plan_for(zoo, loader="memory", mixup=0.4)
    with pytest.raises(ConfigError, match="streaming path"):
        make_plan(bundle, splits, memory_cfg, seed=0, use_unlabelled=False)


RESUME_ARGS = ["distill", "--student", "lenet5", "--strategy", "ce", "--data", "digits", "--steps", "40",
               "--threads", "1", "--no-progress", "--set", "student.input_size=[12,12]", "--set", "data.loader=stream",
               "--set", "data.num_workers=2", "--set", "data.augment=timm", "--set", "data.batch_size=32",
               "--set", "train.eval_every=10", "--set", "train.checkpoint_every=5"]


@pytest.mark.drill
@pytest.mark.slow
def test_kill_and_resume_with_workers_equals_uninterrupted(tmp_path, kdzoo_env):
    whole = start_run(RESUME_ARGS, tmp_path / "whole", env=kdzoo_env, launcher=FORKED)  # on the other core
    stopped = kill_and_resume(RESUME_ARGS, tmp_path / "broken", min_step=20, env=kdzoo_env,
                              launcher=FORKED)  # a checkpoint at step 20
    assert stopped.code == -9
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    assert finished(tmp_path / "broken") == finished(tmp_path / "whole")
