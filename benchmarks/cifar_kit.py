"""Every row of the ``cifar100-mdistiller`` suite for a few steps on random CIFAR-shaped data.

Usage::

    python benchmarks/cifar_kit.py [--steps 3] [--batch 64] [--n 50000] [--device cuda] [--only PATTERN] [--json OUT]

For each distinct (task, pair, method) of the suite (seed 0), the kdzoo engine trains the row's
student with the row's strategy, optimiser and batch size on an in-memory random CIFAR-100-shaped
set of ``--n`` images (50 000, CIFAR-100's train size, so CRD's memory banks have their real size),
teacher randomly initialised (the step cost does not depend on the weights or the pixels). It
checks that every logged term is finite and prints, per row, samples/s over the timed steps (after
one warm-up step), peak memory (CUDA: ``max_memory_allocated``; CPU: the process's peak RSS, which
only grows) and the extra parameters the strategy trains. Exit status 1 if any row fails.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time


def rows(pattern: str | None):
    """``(task, pair, variant, config)`` of each distinct row of the suite, seed 0."""
    from pathlib import Path

    from kdzoo.bench.suite import expand_all, load_suite
    from kdzoo.zoo.plugins import load_zoo

    cells, _ = expand_all(load_suite("cifar100-mdistiller"), load_zoo(), Path("/nonexistent"))
    seen, out = set(), []
    for cell in cells:
        key = (cell.pair, cell.variant, cell.config.optim.lr)
        if cell.seed != cell.config.train.seeds[0] or key in seen:
            continue
        if pattern and pattern not in f"{cell.task} {cell.pair} {cell.variant}":
            continue
        seen.add(key)
        out.append((cell.task, cell.pair, cell.variant, cell.config))
    return out


def run_row(config, steps: int, batch: int, n: int, device: str) -> dict:
    import torch

    from kdzoo.contract.context import RunContext
    from kdzoo.data import BatchPlan, DatasetBundle, make_splits, steps_per_epoch
    from kdzoo.models import create_model
    from kdzoo.zoo.plugins import load_zoo
    from kdzoo.zoo.stack import build_stack
    from kdzoo.train.trainer import Trainer

    zoo = load_zoo()
    g = torch.Generator().manual_seed(0)
    bundle = DatasetBundle(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                           torch.arange(n) % 100, classes=[str(i) for i in range(100)], name="random-cifar100",
                           test_x=torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8, generator=g),
                           test_y=torch.arange(200) % 100)
    config.data.name, config.data.root, config.data.batch_size = "random-cifar100", None, batch
    config.train.steps, config.train.epochs, config.train.eval_every = steps + 1, None, 10 ** 9
    config.runtime.device = device
    splits = make_splits(bundle, config.data)
    dev = torch.device(device)

    def build(m):
        return create_model(m, num_classes=100, data_shape=(3, 32, 32), data_mean=[0.5] * 3, data_std=[0.25] * 3,
                            classes=bundle.classes, task="classification", zoo=zoo).to(dev)

    torch.manual_seed(0)
    teacher, student = build(config.teacher), build(config.student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    ctx = RunContext(config=config, student=student, teacher=teacher, task="classification", classes=bundle.classes,
                     data_shape=(3, 32, 32), seed=0, device=dev, total_steps=steps + 1,
                     steps_per_epoch=steps_per_epoch(splits, config.data), zoo=zoo, bundle=bundle, splits=splits)
    stack = build_stack(config.strategy, ctx, zoo).to(dev)
    trainer = Trainer(ctx, stack, BatchPlan(bundle, splits, config.data, 0, stack.uses_unlabelled))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    logged = trainer.train_step(0)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        logged = trainer.train_step(step)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    bad = [k for k, v in logged.items() if not math.isfinite(v)]
    return {"samples_per_s": steps * batch / seconds, "peak_mib": peak / 2 ** 20, "terms": logged,
            "extra_params": sum(p.numel() for p in stack.student_optimizer_parameters()), "nonfinite": bad}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed optimiser steps per row (after one warm-up step)")
    ap.add_argument("--batch", type=int, default=64, help="batch size (the recipe's 64)")
    ap.add_argument("--n", type=int, default=50000,
                    help="images in the random train set (CRD's memory size; at least 1000: 10%% are held out for "
                         "validation, one per class at least)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--only", default=None, help="run only rows whose 'task pair variant' contains this text")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results, failed = [], 0
    print(f"{'task':<28} {'pair':<38} {'method':<32} {'samples/s':>10} {'peak MiB':>9} {'extra params':>12}")
    for task, pair, variant, config in rows(args.only):
        try:
            r = run_row(config, args.steps, args.batch, args.n, device)
        except Exception as exc:  # report every row, then fail
            failed += 1
            print(f"{task:<28} {pair:<38} {variant:<32} FAILED: {type(exc).__name__}: {exc}")
            results.append({"task": task, "pair": pair, "variant": variant, "error": str(exc)})
            continue
        failed += bool(r["nonfinite"])
        flag = f"  NON-FINITE {r['nonfinite']}" if r["nonfinite"] else ""
        print(f"{task:<28} {pair:<38} {variant:<32} {r['samples_per_s']:>10.1f} {r['peak_mib']:>9.0f} "
              f"{r['extra_params']:>12,}{flag}")
        results.append({"task": task, "pair": pair, "variant": variant, **r})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "batch": args.batch, "steps": args.steps, "n": args.n, "rows": results}, f,
                      indent=1)
    print(f"{len(results)} rows, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
