"""Consistent teacher views at the student's cost: per-sample views, the view store, cache purity, teacher cards.

Replayed teacher logits are float16: they equal a live teacher's on the same views within
``1e-3 * max(1, |logit|)`` (float16 keeps 11 significant bits: relative error <= 2**-11 ~ 4.9e-4).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo.config import DataConfig, ModelConfig
from kdzoo.data import BatchPlan, load_dataset, make_splits
from kdzoo.models.wrapper import create_model
from kdzoo.testing import FORKED, finish_run, finished, kill_and_resume
from kdzoo.train.view_store import ViewStore, expand_topk, store_key

QUIET = {"progress": False, "threads": 1}


def close(stored: torch.Tensor, live: torch.Tensor) -> bool:
    return bool(((stored - live).abs() <= 1e-3 * live.abs().clamp_min(1.0)).all())


@pytest.fixture(scope="module")
def digits(zoo):
    bundle = load_dataset("digits", None, zoo)
    cfg = DataConfig(name="digits", augment="shift-flip", shift_pixels=1, labels_per_class=20, batch_size=32)
    return bundle, make_splits(bundle, cfg), cfg


def small_teacher(bundle, zoo, seed=0):
    torch.manual_seed(seed)
    return create_model(ModelConfig("vggnet", {"channels": [[4], [8]], "hidden": 16}), num_classes=10,
                        data_shape=(1, 8, 8), data_mean=[0.3], data_std=[0.4], classes=bundle.classes,
                        task="classification", zoo=zoo).eval()


def test_views_are_a_pure_function_of_view_seed_draw_and_sample(digits):
    bundle, splits, cfg = digits
    plan = BatchPlan(bundle, splits, cfg, seed=0, use_unlabelled=True)
    batches = [plan.batch(s) for s in range(16)]  # the labelled pool (200) cycles: draws 0 and 1
    assert {int(d) for b in batches for d in b.draw} >= {0, 1}
    for b in batches[::5]:  # each view recomputed alone, in another order, equals the batch's
        order = torch.randperm(len(b.index))
        assert torch.equal(plan.views(b.index[order], b.draw[order]), b.x[order])
    resumed = BatchPlan(bundle, splits, cfg, seed=0, use_unlabelled=True)  # a fresh plan: resume
    assert torch.equal(resumed.batch(7).x, batches[7].x)
    other_seed = BatchPlan(bundle, splits, cfg, seed=1, use_unlabelled=True)  # same views, other order
    b = other_seed.batch(3)
    assert torch.equal(plan.views(b.index, b.draw), b.x)
    per_seed = BatchPlan(bundle, splits, DataConfig(**{**cfg.__dict__, "per_seed_views": True}), seed=1,
                         use_unlabelled=True)
    assert not torch.equal(per_seed.views(b.index, b.draw), b.x)
    assert not torch.equal(plan.views(b.index, b.draw + 1), b.x)  # another draw, another view


def test_replayed_views_equal_a_live_teacher_and_a_second_store_reads_what_the_first_wrote(digits, zoo, tmp_path):
    bundle, splits, cfg = digits
    teacher = small_teacher(bundle, zoo)
    plan = BatchPlan(bundle, splits, cfg, seed=0, use_unlabelled=True)
    store = ViewStore(teacher, plan, tmp_path, 64, torch.device("cpu"))
    for step in (0, 7, 13):
        batch = plan.batch(step)
        with torch.no_grad():
            live = teacher.outputs(batch.x, store_requirement()).logits
        assert close(store.get(batch.index, batch.draw, batch.labelled).logits, live)
    assert store.filled >= 3 and store.loaded == 0  # labelled draws 0, 1 and the unlabelled pool's draw 0
    again = ViewStore(teacher, BatchPlan(bundle, splits, cfg, seed=5, use_unlabelled=True), tmp_path, 64,
                      torch.device("cpu"))
    b = plan.batch(13)
    assert torch.equal(again.get(b.index, b.draw, b.labelled).logits, store.get(b.index, b.draw, b.labelled).logits)
    assert again.filled == 0 and again.loaded >= 1 and again.key == store.key  # another run seed: the same store


def store_requirement():
    from kdzoo.contract.strategy import Requirement

    return Requirement(logits=True)


def test_the_store_is_rekeyed_by_augmentation_teacher_and_data_but_not_by_the_run_seed(digits, zoo):
    bundle, splits, cfg = digits
    teacher = small_teacher(bundle, zoo)

    def key(cfg=cfg, teacher=teacher, bundle=bundle, splits=splits, seed=0):
        plan = BatchPlan(bundle, splits, cfg, seed=seed, use_unlabelled=True)
        return store_key(teacher, bundle, plan.labelled, plan.unlabelled, cfg, plan.view_seed, torch.device("cpu"))[0]

    base = key()
    assert key(seed=3) == base
    changed = {
        "shift": key(cfg=DataConfig(**{**cfg.__dict__, "shift_pixels": 2})),
        "flip": key(cfg=DataConfig(**{**cfg.__dict__, "hflip": 0.25})),
        "augment": key(cfg=DataConfig(**{**cfg.__dict__, "augment": "shift"})),
        "view seed": key(cfg=DataConfig(**{**cfg.__dict__, "view_seed": 1})),
        "per-seed views": key(cfg=DataConfig(**{**cfg.__dict__, "per_seed_views": True}), seed=3),
        "teacher": key(teacher=small_teacher(bundle, zoo, seed=1)),
        "split": key(splits=make_splits(bundle, DataConfig(**{**cfg.__dict__, "split_seed": 1}))),
    }
    edited = type(bundle)(**{**bundle.__dict__, "x": bundle.x.clone()})
    edited.x[int(splits.train[0])] += 1.0
    changed["data"] = key(bundle=edited)
    assert all(k != base for k in changed.values()), [n for n, k in changed.items() if k == base]


def test_a_damaged_shard_is_moved_aside_and_rebuilt_with_one_line(digits, zoo, tmp_path):
    bundle, splits, cfg = digits
    teacher = small_teacher(bundle, zoo)
    plan = BatchPlan(bundle, splits, cfg, seed=0, use_unlabelled=False)
    b = plan.batch(0)
    want = ViewStore(teacher, plan, tmp_path, 64, torch.device("cpu")).get(b.index, b.draw, b.labelled).logits
    shard = next(tmp_path.glob("*/draw-000000-labelled.safetensors"))
    raw = bytearray(shard.read_bytes())
    raw[-40:-20] = bytes(20)  # zero bytes inside the logits
    shard.write_bytes(bytes(raw))
    said = []
    store = ViewStore(teacher, plan, tmp_path, 64, torch.device("cpu"), log=said.append)
    assert torch.equal(store.get(b.index, b.draw, b.labelled).logits, want)
    assert len(said) == 1 and "damaged (its content does not match its SHA-256)" in said[0] and "rebuilt" in said[0]
    assert store.filled == 1 and len(list(shard.parent.glob("*.damaged-*"))) == 1


def test_concurrent_fillers_fill_each_shard_once_under_the_lock(digits, zoo, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    bundle, splits, cfg = digits
    teacher = small_teacher(bundle, zoo)
    plans = [BatchPlan(bundle, splits, cfg, seed=s, use_unlabelled=False) for s in (0, 1)]
    stores = [ViewStore(teacher, plan, tmp_path, 64, torch.device("cpu")) for plan in plans]
    b = plans[0].batch(0)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda store: store.get(b.index, b.draw, b.labelled).logits, stores))
    assert torch.equal(got[0], got[1])
    assert sorted((s.filled, s.loaded) for s in stores) == [(0, 1), (1, 0)]  # one filled, the other read it
    assert not list(tmp_path.glob("*/.*tmp*"))  # atomic: no temporary file left


def test_top_k_logits_keep_the_top_probabilities_and_the_total_mass():
    logits = torch.randn(5, 300, generator=torch.Generator().manual_seed(0)) * 3
    values, where = logits.topk(32, dim=1)
    full = expand_topk(values, where, logits.logsumexp(1), 300)
    p, q = logits.softmax(1), full.softmax(1)
    assert torch.allclose(q.gather(1, where), p.gather(1, where), atol=1e-6)
    assert torch.allclose(q.sum(1), torch.ones(5)) and torch.equal(full.gather(1, where), values)


def distill(tmp_path, name, **over):
    config = {"teacher": {"name": "mlp", "kwargs": {"hidden": [32]}}, "student": "linear", "strategy": "kd",
              "data": {"name": "digits", "augment": "shift-flip", "shift_pixels": 1}, "teacher_train": {"epochs": 1},
              "train": {"steps": 12}, "runtime": QUIET, "out": str(tmp_path / "runs"), "name": name}
    for section, values in over.items():
        config[section] = values
    said = []
    result = kdzoo.distill(config, log=said.append)
    return result.seeds[0], said


def test_augmented_kd_uses_the_store_and_says_why_when_it_cannot(tmp_path, monkeypatch):
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    stored, said = distill(tmp_path, "stored")
    assert not [line for line in said if "off" in line], said
    assert list((tmp_path / "cache" / "views").glob("*/draw-*.safetensors"))
    live, _ = distill(tmp_path, "live", runtime={**QUIET, "teacher_cache": "off"})
    assert abs(stored["test_best"]["acc"] - live["test_best"]["acc"]) <= 2.0  # float16 targets: near, not bitwise
    _, said = distill(tmp_path, "pooled", strategy="pooled-feature", student={"name": "mlp", "kwargs": {"hidden": [8]}})
    assert [line for line in said if line.startswith("view store off: the strategy needs the teacher's pooled")]
    from kdzoo.config import RunConfig
    from kdzoo.contract.strategy import Requirement
    from kdzoo.train.view_store import store_refusal

    logits = Requirement(logits=True)
    mixed = RunConfig(data=DataConfig(augment="timm", mixup=0.2))
    assert store_refusal(mixed, logits, None, None, None, torch.float32).startswith("view store off: data.mixup=0.2")
    assert store_refusal(RunConfig(), logits, None, None, None, torch.bfloat16).startswith(
        "view store off: runtime.teacher_dtype=bfloat16")


class Images(torch.utils.data.Dataset):
    """A user's own Dataset of digits images (``kdzoo_deterministic`` declared by the test)."""

    classes = [str(c) for c in range(10)]

    def __init__(self, part: int, deterministic: bool | None) -> None:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        keep = np.arange(len(y)) % 4 == part
        self.x, self.targets = torch.as_tensor(x[keep] / 16.0).float().view(-1, 1, 8, 8), torch.as_tensor(y[keep])
        if deterministic is not None:
            self.kdzoo_deterministic = deterministic

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.x[i], int(self.targets[i])


@pytest.mark.parametrize("augment, folder", [("none", "teacher-outputs"), ("shift", "views")])
def test_a_dataset_that_declares_itself_deterministic_gets_the_cache_or_the_store(tmp_path, monkeypatch, augment,
                                                                                   folder):
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    teacher = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(64, 10))
    student = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(64, 10))
    config = {"strategy": "kd", "data": {"augment": augment, "shift_pixels": 1, "loader": "memory"},
              "train": {"steps": 4}, "runtime": QUIET, "out": str(tmp_path / "runs")}
    said = []
    kdzoo.distill(config, teacher=teacher, student=student, train=Images(0, True), val=Images(1, True), log=said.append)
    assert (tmp_path / "cache" / folder).exists() and not [line for line in said if " off:" in line]
    said.clear()
    kdzoo.distill(config, teacher=teacher, student=student, train=Images(0, None), val=Images(1, None), log=said.append)
    assert [line for line in said if "may augment" in line and "kdzoo_deterministic" in line], said


def test_a_teacher_output_cache_entry_is_the_same_bytes_whichever_student_filled_it(tmp_path, monkeypatch):
    """#27: the teacher's memory format follows the teacher (a conv net: channels_last), never the student."""
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    common = {"teacher": {"name": "vggnet", "kwargs": {"channels": [[8], [16]], "hidden": 16}},
              "data": {"name": "digits"}, "teacher_train": {"epochs": 1}, "strategy": "kd",
              "train": {"steps": 2}, "runtime": QUIET, "out": str(tmp_path / "runs")}
    entries = {}
    for student in ({"name": "vggnet", "kwargs": {"channels": [[4]], "hidden": 8}}, {"name": "linear"}):
        kdzoo.distill({**common, "student": student}, log=lambda *a: None)
        folder = tmp_path / "cache" / "teacher-outputs"
        (entry,) = folder.glob("*.safetensors")
        entries[student["name"]] = entry.read_bytes()
        entry.rename(tmp_path / f"{student['name']}.safetensors")  # the next student fills it afresh
    assert entries["vggnet"] == entries["linear"]


def test_a_damaged_teacher_output_cache_entry_is_rebuilt_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    config = {"teacher": {"name": "mlp", "kwargs": {"hidden": [16]}}, "student": "linear", "strategy": "kd",
              "data": {"name": "digits"}, "teacher_train": {"epochs": 1}, "train": {"steps": 3}, "runtime": QUIET,
              "out": str(tmp_path / "runs")}
    first = kdzoo.distill(config, log=lambda *a: None).seeds[0]["test_best"]
    (entry,) = (tmp_path / "cache" / "teacher-outputs").glob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated
    said = []
    again = kdzoo.distill(config, log=said.append).seeds[0]["test_best"]
    assert again == first
    assert len([line for line in said if "damaged" in line and "rebuilt" in line]) == 1


def test_a_trained_teacher_gets_a_card_with_recipe_accuracies_and_cpu_time(tmp_path, monkeypatch, zoo):
    from kdzoo.config import make_config
    from kdzoo.train.runs import task_teacher
    from kdzoo.train.teacher import teacher_card

    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    config = make_config({"teacher": {"name": "mlp", "kwargs": {"hidden": [16]}}, "data": {"name": "digits"},
                          "teacher_train": {"epochs": 1}, "runtime": QUIET})
    task_teacher(config, zoo, log=lambda *a: None)
    card_md = teacher_card(config)
    card = json.loads((card_md.parent / "card.json").read_text())
    assert card["recipe"]["teacher"]["name"] == "mlp" and card["selected_on"] == "validation"
    assert card["val"]["acc"] > 0 and card["test"]["acc"] > 0 and card["cpu_seconds"] > 0
    assert (card_md.parent / "teacher.safetensors").exists() and "CPU min" in card_md.read_text()
    card_md.unlink()  # a teacher cached before cards existed gets one from what its run recorded
    assert teacher_card(config) == card_md and card_md.exists()


@pytest.mark.drill
@pytest.mark.slow
def test_kill_9_during_augmented_kd_then_resume_with_the_store_equals_an_uninterrupted_run(tmp_path):
    env = dict(os.environ, KDZOO_CACHE=str(tmp_path / "cache"), OMP_WAIT_POLICY="PASSIVE")  # its own view store
    args = ["distill", "--teacher", "mlp", "--student", "linear", "--strategy", "kd", "--data", "digits",
            "--labels-per-class", "20", "--steps", "150", "--threads", "1", "--no-progress",
            "--set", "teacher_train.epochs=1", "--set", "teacher.kwargs.hidden=[32]", "--set", "train.eval_every=10",
            "--set", "train.checkpoint_every=5", "--set", "data.augment=shift-flip", "--set", "data.shift_pixels=1"]
    # the killed run fills the store as it goes (a labelled draw every ~3 steps), the resumed one goes on filling it
    assert kill_and_resume(args, tmp_path / "broken", min_step=40, env=env, launcher=FORKED).code == -9
    finish_run(args, tmp_path / "whole", env=env, launcher=FORKED)  # replays the views the killed run stored
    assert finished(tmp_path / "broken") == finished(tmp_path / "whole")
    assert len(list((tmp_path / "cache" / "views").glob("*/draw-*-labelled.safetensors"))) >= 40
