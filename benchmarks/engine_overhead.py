"""Engine overhead and the teacher-output cache, measured side by side in one run.

Usage: python benchmarks/engine_overhead.py [--repeats 5] [--threads 1]

Prints (median of ``--repeats`` alternating repeats, one epoch of mnist5k each):
  * a logit-KD epoch through the engine / the same work in a hand-written PyTorch loop
    (target <= 1.05x);
  * a logit-KD epoch with the teacher-output cache already filled / training the student alone
    (target <= 1.15x), plus the cache-filling epoch on its own.
Same models (test_resnet -> lenet5), batch size, data in memory and optimiser on every side.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from kdzoo.config import make_config
from kdzoo.contract.context import RunContext
from kdzoo.data import BatchPlan, channel_stats, load_dataset, make_splits, steps_per_epoch, to_float
from kdzoo.models.wrapper import create_model
from kdzoo.zoo.plugins import load_zoo
from kdzoo.zoo.stack import build_stack
from kdzoo.train.trainer import Trainer, freeze


def setup(strategy: str, cache: str, teacher_state=None):
    zoo = load_zoo()
    cfg = make_config({"teacher": "test_resnet", "student": "lenet5", "strategy": strategy,
                       "data": {"name": "mnist5k", "batch_size": 128},
                       "runtime": {"progress": False, "channels_last": "off", "teacher_cache": cache}})
    bundle = load_dataset("mnist5k", None, zoo)
    splits = make_splits(bundle, cfg.data)
    mean, std = channel_stats(bundle, splits.train)

    def build(m):
        torch.manual_seed(0)
        return create_model(m, num_classes=10, data_shape=(1, 28, 28), data_mean=mean, data_std=std,
                            classes=bundle.classes, task="classification", zoo=zoo)

    teacher, student = build(cfg.teacher), build(cfg.student)
    if teacher_state is not None:
        teacher.load_state_dict(teacher_state)
    spe = steps_per_epoch(splits, cfg.data)
    ctx = RunContext(config=cfg, student=student, teacher=teacher if strategy != "ce" else None, task="classification",
                     classes=bundle.classes, data_shape=(1, 28, 28), seed=0, device=torch.device("cpu"),
                     total_steps=spe * 100, steps_per_epoch=spe, zoo=zoo, bundle=bundle, splits=splits)
    stack = build_stack(cfg.strategy, ctx, zoo)
    plan = BatchPlan(bundle, splits, cfg.data, 0, stack.uses_unlabelled)
    return ctx, stack, plan, teacher


def engine_epoch(trainer: Trainer, epoch: int) -> float:
    spe = trainer.ctx.steps_per_epoch
    t0 = time.perf_counter()
    for step in range(epoch * spe, (epoch + 1) * spe):
        trainer.train_step(step)
    return time.perf_counter() - t0


def hand_epoch(student, teacher, plan: BatchPlan, opt, sched, epoch: int, spe: int, T: float = 4.0, alpha: float = 0.9) -> float:
    """The same KD step written directly in PyTorch (data gathered from memory, normalised per model)."""
    freeze(teacher)
    t0 = time.perf_counter()
    for step in range(epoch * spe, (epoch + 1) * spe):
        idx = plan._take(plan.labelled, plan.k_lab, step, 1)
        x = to_float(plan.bundle.x[idx])
        y = plan.bundle.y[idx]
        with torch.no_grad():
            t_logits = teacher.net((x - teacher.mean) / teacher.std)
        s_logits = student.net((x - student.mean) / student.std)
        kd = F.kl_div(F.log_softmax(s_logits / T, -1), F.softmax(t_logits / T, -1), reduction="batchmean") * T * T
        loss = alpha * kd + (1 - alpha) * F.cross_entropy(s_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import os

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KDZOO_CACHE"] = tmp
        ctx_live, stack_live, plan, teacher = setup("kd", "off")
        engine = Trainer(ctx_live, stack_live, plan)
        ctx_h, _, plan_h, teacher_h = setup("kd", "off", teacher.state_dict())
        opt = torch.optim.AdamW([{"params": [q for q in ctx_h.student.parameters() if q.ndim > 1], "weight_decay": 1e-4},
                                 {"params": [q for q in ctx_h.student.parameters() if q.ndim <= 1], "weight_decay": 0.0}], lr=2e-3)
        total = ctx_h.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        ctx_c, stack_c, plan_c, _ = setup("kd", "auto", teacher.state_dict())
        t0 = time.perf_counter()
        cached = Trainer(ctx_c, stack_c, plan_c)  # builds (fills) the teacher-output cache
        fill = time.perf_counter() - t0
        ctx_ce, stack_ce, plan_ce, _ = setup("ce", "off")
        alone = Trainer(ctx_ce, stack_ce, plan_ce)
        spe = ctx_live.steps_per_epoch
        times: dict[str, list[float]] = {"engine KD (live teacher)": [], "hand-written KD loop": [],
                                         "engine KD (cached teacher)": [], "engine student alone (ce)": []}
        for r in range(args.repeats + 1):  # the first round warms up and is dropped
            row = [engine_epoch(engine, r), hand_epoch(ctx_h.student, teacher_h, plan_h, opt, sched, r, spe),
                   engine_epoch(cached, r), engine_epoch(alone, r)]
            if r:
                for k, v in zip(times, row):
                    times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"one mnist5k epoch ({spe} steps, batch 128, test_resnet -> lenet5, {args.threads} thread(s)), "
          f"median of {args.repeats} alternating repeats:")
    for k, v in med.items():
        print(f"  {k:<28} {v:7.3f} s")
    print(f"  teacher-output cache filling (once)  {fill:7.3f} s")
    print(f"engine / hand-written loop:            {med['engine KD (live teacher)'] / med['hand-written KD loop']:.3f}x  (target <= 1.05)")
    print(f"cached KD / student alone:             {med['engine KD (cached teacher)'] / med['engine student alone (ce)']:.3f}x  (target <= 1.15)")
    print(f"live KD / cached KD:                   {med['engine KD (live teacher)'] / med['engine KD (cached teacher)']:.2f}x speed-up from the cache")


if __name__ == "__main__":
    main()
