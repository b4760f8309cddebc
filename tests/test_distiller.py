"""kdzoo.Distiller: the engine's strategy stack as one module for a user's own loop."""

from __future__ import annotations

import json

import pytest
import torch

import kdzoo
from kdzoo import ConfigError, Distiller
from kdzoo.config import DataConfig, ModelConfig
from kdzoo.data import BatchPlan, channel_stats, load_dataset, make_splits, steps_per_epoch
from kdzoo.bench.metrics import evaluate
from kdzoo.models.wrapper import create_model, save_model

SEED, STEPS, BATCH, LR = 3, 12, 32, 0.05


def _mlp(bundle, mean, std, zoo, hidden=(32,)):
    return create_model(ModelConfig(name="mlp", kwargs={"hidden": list(hidden)}), num_classes=len(bundle.classes),
                        data_shape=bundle.sample_shape, data_mean=mean, data_std=std, classes=bundle.classes,
                        task="classification", zoo=zoo)


@pytest.fixture(scope="module")
def digits(zoo):
    bundle = load_dataset("digits", None, zoo)
    cfg = DataConfig(name="digits", batch_size=BATCH)
    splits = make_splits(bundle, cfg)
    return bundle, splits, cfg


@pytest.fixture()
def teacher_file(tmp_path, digits, zoo):
    """A randomly initialised exported teacher: both sides load the very same weights."""
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(123)
    path = tmp_path / "teacher.safetensors"
    save_model(_mlp(bundle, mean, std, zoo, hidden=(64,)), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["kd", "pooled-feature+kd"])
def test_distiller_in_a_plain_loop_matches_kdzoo_distill(strategy, tmp_path, digits, teacher_file, zoo):
    bundle, splits, data_cfg = digits
    config = {
        "teacher": {"name": "mlp", "checkpoint": str(teacher_file)}, "student": {"name": "mlp", "kwargs": {"hidden": [32]}},
        "data": {"name": "digits", "batch_size": BATCH}, "strategy": strategy,
        "optim": {"name": "sgd", "lr": LR, "weight_decay": 0.0, "schedule": "constant"},
        "train": {"steps": STEPS, "seeds": [SEED]}, "out": str(tmp_path / "runs"), "name": "engine",
        "runtime": {"threads": 1, "progress": False, "teacher_cache": "off", "channels_last": "off", "amp": "off"},
    }
    result = kdzoo.distill(config, zoo=zoo, log=lambda *a, **k: None)
    lines = (result.run_dir / f"seed-{SEED}" / "metrics.jsonl").read_text().splitlines()
    engine = json.loads(lines[-1])
    assert engine["step"] == STEPS

    # the user's side: the same data, seed and budget, in a plain PyTorch loop
    teacher = kdzoo.load_model(teacher_file, zoo)
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(SEED)  # what the engine does before it builds the student and the strategies
    student = _mlp(bundle, mean, std, zoo)
    distiller = Distiller(student, teacher, strategy, total_steps=STEPS, steps_per_epoch=steps_per_epoch(splits, data_cfg),
                          zoo=zoo)
    torch.manual_seed(SEED)
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=LR, momentum=0.9)
    plan = BatchPlan(bundle, splits, data_cfg, SEED, use_unlabelled=False)  # the engine's batches
    distiller.train()
    for step in range(STEPS):
        batch = plan.batch(step)
        out = distiller(batch.x, batch.y)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    val = evaluate(distiller.student, bundle.x, bundle.y, splits.val, "classification", data_cfg.eval_batch_size)

    assert int(distiller.step) == STEPS
    mine = {f"train/{k}": v for k, v in out.items().items()} | {f"val/{k}": v for k, v in val.items()}
    theirs = {k: v for k, v in engine.items() if k.startswith(("train/", "val/"))}
    assert set(mine) == set(theirs)
    for key, value in theirs.items():
        assert mine[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_distiller_as_an_hf_trainer_compute_loss_would_call_it(digits, zoo):
    """An HF ``Trainer`` subclass overrides ``compute_loss(model, inputs, return_outputs=False)``:
    ``inputs`` is the collator's dict, ``model`` the student the Trainer optimises."""
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(0)
    teacher, student = _mlp(bundle, mean, std, zoo, hidden=(64,)), _mlp(bundle, mean, std, zoo)
    distiller = Distiller(student, teacher, "kd+pooled-feature", kd={"temperature": 2.0}, zoo=zoo)

    class DistillTrainer:  # the override, as it would read in a transformers.Trainer subclass
        def __init__(self, model, distiller):
            self.model, self.distiller = model, distiller

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = self.distiller(inputs["pixel_values"], inputs["labels"])
            return (out.loss, {"logits": out.logits}) if return_outputs else out.loss

    trainer = DistillTrainer(distiller.student, distiller)
    optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-2)
    idx = torch.as_tensor(splits.train[:64])
    inputs = {"pixel_values": bundle.x[idx], "labels": bundle.y[idx]}
    losses = []
    for _ in range(5):
        loss, outputs = trainer.compute_loss(trainer.model, inputs, return_outputs=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert outputs["logits"].shape == (64, len(bundle.classes))
    assert losses[-1] < losses[0]
    # the projector is trained with the student, the teacher never is
    projector = [p for p in distiller.stack.parameters() if p.requires_grad]
    assert projector and all(p.grad is not None for p in projector)
    assert all(not p.requires_grad and p.grad is None for p in distiller.teacher.parameters())
    assert not distiller.teacher.training and distiller.student.training


def test_distiller_terms_are_the_stack_terms_with_their_weights(digits, zoo):
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    teacher, student = _mlp(bundle, mean, std, zoo), _mlp(bundle, mean, std, zoo)
    distiller = Distiller(student, teacher, "kd", temperature=4.0, alpha=0.75, zoo=zoo)
    x, y = kdzoo.data.to_float(bundle.x[:16]), bundle.y[:16]
    with torch.no_grad():
        out = distiller(x, y)
    assert out.weights == {"kd": 0.75, "label": pytest.approx(0.25)}
    with torch.no_grad():
        expected_kd = kdzoo.losses.kd_loss(student(x), teacher(x), 4.0)
        expected_ce = torch.nn.functional.cross_entropy(student(x), y)
    assert float(out.terms["kd"]) == pytest.approx(float(expected_kd), rel=1e-6)
    assert float(out.terms["label"]) == pytest.approx(float(expected_ce), rel=1e-6)
    assert float(out.loss) == pytest.approx(0.75 * float(expected_kd) + 0.25 * float(expected_ce), rel=1e-6)


def test_init_strategies_apply_in_the_constructor(digits, zoo):
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    teacher, student = _mlp(bundle, mean, std, zoo), _mlp(bundle, mean, std, zoo)
    distiller = Distiller(student, teacher, "direct-copy+kd", zoo=zoo)
    assert torch.equal(student.net.state_dict()[next(iter(student.net.state_dict()))],
                       teacher.net.state_dict()[next(iter(teacher.net.state_dict()))])
    assert "direct-copy" in distiller.init_report


def test_engine_only_and_misused_stacks_fail_in_one_line(digits, zoo):
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    teacher, student = _mlp(bundle, mean, std, zoo), _mlp(bundle, mean, std, zoo)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    cases = [
        (lambda: Distiller(student, teacher, "dafl", zoo=zoo), "engine-only"),
        (lambda: Distiller(student, teacher, "fitnet", zoo=zoo), "total_steps"),
        (lambda: Distiller(student, teacher, "kd+logit-mse", temperature=2.0, zoo=zoo), "kd={...}, logit-mse={...}"),
        (lambda: Distiller(plain, teacher, "pooled-feature", num_classes=10, input_shape=(1, 8, 8), zoo=zoo),
         "student Sequential is a plain module without timm's feature API"),
        (lambda: Distiller("mlp", teacher, "kd", zoo=zoo), "num_classes= and input_shape="),
    ]
    for build, needle in cases:
        with pytest.raises(ConfigError) as info:
            build()
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_plain_module_student_learns_from_logits(digits, zoo):
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    teacher = _mlp(bundle, mean, std, zoo)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    distiller = Distiller(plain, teacher, "kd", num_classes=10, input_shape=(1, 8, 8), zoo=zoo)
    assert [p for p in distiller.trainable_parameters()] == list(plain.parameters())
    out = distiller(kdzoo.data.to_float(bundle.x[:8]), bundle.y[:8])
    assert set(out.terms) == {"kd", "label"} and out.logits.shape == (8, 10)


def test_warm_ups_follow_the_distillers_step_counter(digits, zoo):
    """DKD's terms grow linearly over ``warmup_epochs``: the internal counter advances per training call."""
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(0)
    teacher, student = _mlp(bundle, mean, std, zoo), _mlp(bundle, mean, std, zoo)
    distiller = Distiller(student, teacher, "dkd", warmup_epochs=4.0, steps_per_epoch=1, zoo=zoo)
    x, y = kdzoo.data.to_float(bundle.x[:16]), bundle.y[:16]
    with torch.no_grad():
        first = distiller(x, y)  # step 0: warm-up factor 0
        second = distiller(x, y)  # step 1: 1/4
        explicit = distiller(x, y, step=2)  # an explicit step leaves the counter alone
    assert int(distiller.step) == 2
    assert all(float(v) == 0.0 for k, v in first.terms.items() if k != "label")
    halves = {k: float(explicit.terms[k]) / float(second.terms[k]) for k in second.terms if k != "label"}
    assert halves and all(ratio == pytest.approx(2.0, rel=1e-5) for ratio in halves.values())
    distiller.eval()
    distiller(x, y)
    assert int(distiller.step) == 2  # evaluation calls do not advance it


def test_a_strategy_that_reads_the_training_set_takes_train_data(digits, zoo):
    bundle, splits, _ = digits
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(0)
    teacher, student = _mlp(bundle, mean, std, zoo), _mlp(bundle, mean, std, zoo)
    with pytest.raises(ConfigError, match=r"refilled reads the training set .*pass train_data=\(x, y\)"):
        Distiller(student, teacher, "refilled", zoo=zoo)
    idx = torch.as_tensor(splits.train[:200])
    x, y = kdzoo.data.to_float(bundle.x[idx]), bundle.y[idx]
    distiller = Distiller(student, teacher, "refilled", train_data=(x, y), total_steps=10, zoo=zoo)
    out = distiller(x[:32], y[:32])
    assert out.terms and torch.isfinite(out.loss)
