"""Augmented KD with the view store versus the student alone with the same augmentation, in one run.

Usage: python benchmarks/view_store.py [--data-root DIR] [--teacher FILE] [--steps 150] [--threads 1]

Full Fashion-MNIST (54,000 train after the 10% validation share), ``shift-flip`` views on both
sides, the fashion suite's CNN student (``lenet5`` BN, width 0.5), a ``vggnet`` teacher (the
strong teacher's export with ``--teacher``; otherwise a randomly initialised one of the same
architecture: speed does not depend on the weights). Measured in this one process, CPU seconds:

* ``ce``: the student alone, ``--steps`` steps;
* ``kd live``: the teacher's forward pass on every batch (no store);
* ``kd store replay``: the same steps with the store already filled;
* ``fill``: teacher outputs on one draw of every train sample (one epoch of views), on its own.

A run of E epochs pays E fills once, so its amortised cost per step is replay + fill/epoch-steps
when one run fills the store, and replay + fill/(epoch-steps x R) when R runs share it (every
seed and every logit strategy of a table: the view seed is independent of the run seed). Also
prints the store's size per epoch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from kdzoo.config import make_config
from kdzoo.contract.context import RunContext
from kdzoo.data import BatchPlan, channel_stats, load_dataset, make_splits, steps_per_epoch
from kdzoo.models.wrapper import create_model, load_model
from kdzoo.train.trainer import Trainer
from kdzoo.train.view_store import ViewStore
from kdzoo.zoo.plugins import load_zoo
from kdzoo.zoo.stack import build_stack

TEACHER = {"name": "vggnet", "kwargs": {"channels": [[32], [64, 64], [128]], "hidden": 256, "dropout": 0.3}}
STUDENT = {"name": "lenet5", "kwargs": {"batchnorm": True, "width": 0.5}}


def build_trainer(strategy: str, cache: str, root: str, teacher_file: str | None, zoo):
    cfg = make_config({"teacher": TEACHER, "student": STUDENT, "strategy": strategy,
                       "data": {"name": "fashion-mnist", "root": root, "augment": "shift-flip", "batch_size": 128},
                       "runtime": {"progress": False, "teacher_cache": cache}})
    bundle = load_dataset("fashion-mnist", root, zoo)
    splits = make_splits(bundle, cfg.data)
    mean, std = channel_stats(bundle, splits.train)

    def build(m):
        torch.manual_seed(0)
        return create_model(m, num_classes=10, data_shape=(1, 28, 28), data_mean=mean, data_std=std,
                            classes=bundle.classes, task="classification", zoo=zoo)

    teacher = load_model(teacher_file, zoo) if teacher_file else build(cfg.teacher)
    spe = steps_per_epoch(splits, cfg.data)
    ctx = RunContext(config=cfg, student=build(cfg.student), teacher=teacher if strategy != "ce" else None,
                     task="classification", classes=bundle.classes, data_shape=(1, 28, 28), seed=0,
                     device=torch.device("cpu"), total_steps=spe * 100, steps_per_epoch=spe, zoo=zoo, bundle=bundle,
                     splits=splits, log=print)
    stack = build_stack(cfg.strategy, ctx, zoo)
    return Trainer(ctx, stack, BatchPlan(bundle, splits, cfg.data, 0, stack.uses_unlabelled)), spe


def steps_cpu(trainer: Trainer, steps: int, start: int = 0) -> float:
    trainer.ctx.student.train()
    tick = time.process_time()
    for step in range(start, start + steps):
        trainer.train_step(step)
    return time.process_time() - tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--teacher", help="a kdzoo export of the teacher (default: random vggnet weights)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the run the fill is amortised over")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    zoo = load_zoo()
    import os

    os.environ["KDZOO_CACHE"] = tempfile.mkdtemp(prefix="kdzoo-viewstore-")
    n = args.steps * 128

    ce, spe = build_trainer("ce", "auto", args.data_root, args.teacher, zoo)
    steps_cpu(ce, 5)
    t_ce = steps_cpu(ce, args.steps, 5)
    live, _ = build_trainer("kd", "off", args.data_root, args.teacher, zoo)
    steps_cpu(live, 5)
    t_live = steps_cpu(live, args.steps, 5)

    stored, _ = build_trainer("kd", "auto", args.data_root, args.teacher, zoo)
    store: ViewStore = stored.view_store
    tick = time.process_time()
    store._shard(0, "labelled")  # one epoch of views: draw 0 of the whole train pool
    t_fill = time.process_time() - tick
    pool = len(store.pools["labelled"])
    steps_cpu(stored, 5)
    t_replay = steps_cpu(stored, args.steps, 5)  # steps 5.. stay in draw 0: replayed from the store
    assert store.filled == 1, "the timed steps left draw 0"
    per_epoch = store.size_bytes()

    fill_per_step = t_fill / spe
    rows = [("ce (student alone, shift-flip)", t_ce), ("kd, teacher live", t_live), ("kd, store replay", t_replay)]
    print(f"Fashion-MNIST, {pool:,} train samples, {spe} steps/epoch, batch 128, {args.threads} thread(s), "
          f"{args.steps} steps each; CPU seconds")
    for name, t in rows:
        print(f"  {name:32s} {n / t:8.0f} samples/s  ({t / t_ce:.2f}x ce)")
    print(f"  fill: one epoch of views ({pool:,} teacher forwards) {t_fill:.1f} CPU s = {pool / t_fill:.0f} samples/s "
          f"({fill_per_step * 1e3:.1f} ms per step of an epoch)")
    for runs in (1, 5, 45):
        amortised = (t_replay / args.steps + fill_per_step / runs) / (t_ce / args.steps)
        print(f"  kd with the store, fill counted once and shared by {runs:2d} run(s): {amortised:.2f}x ce")
    print(f"  store size: {per_epoch / 1e6:.2f} MB per epoch ({per_epoch / pool:.1f} bytes per sample, "
          "float16 logits); "
          f"{args.epochs} epochs: {per_epoch * args.epochs / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
