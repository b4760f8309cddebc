"""The streaming data path against the in-memory path: speed, transform cost and memory.

Usage: python benchmarks/data_paths.py --fmnist FOLDER [--steps 150] [--repeats 3] [--workers 2]
                                       [--images-gb 2.1] [--scratch DIR]

Prints:
  * training samples/s of a lenet5 student (ce, AdamW) on Fashion-MNIST with the same tensor
    augmentation (``shift``) through the in-memory plan and through the streaming plan with
    ``--workers`` workers (batched fetching), median of ``--repeats`` interleaved repeats;
  * the cost of timm's PIL training transform (random-resized-crop, flip, RandAugment) on its own,
    in images/s of one process;
  * memory of the streaming path (PSS summed over the main process and its workers, peak over the
    run) on a synthetic on-disk image folder of ``--images-gb`` GB and on a 10x smaller one, with
    timm augmentation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch

from kdzoo.config import make_config
from kdzoo.contract.context import RunContext
from kdzoo.data import build_train_transform, channel_stats, load_dataset, make_plan, make_splits, steps_per_epoch
from kdzoo.models.wrapper import create_model
from kdzoo.zoo.plugins import load_zoo
from kdzoo.zoo.stack import build_stack
from kdzoo.train.trainer import Trainer


def trainer_for(data: dict, zoo, bundle=None) -> tuple[Trainer, object]:
    """A ce trainer of lenet5 on ``data`` and its plan (in memory or streamed, from ``data.loader``)."""
    cfg = make_config({"student": "lenet5", "strategy": "ce", "data": data,
                       "runtime": {"progress": False, "channels_last": "off"}, "train": {"steps": 10**6}})
    bundle = bundle or load_dataset(cfg.data.name, cfg.data.root, zoo, image_size=cfg.data.image_size)
    splits = make_splits(bundle, cfg.data)
    mean, std = channel_stats(bundle, splits.train)
    torch.manual_seed(0)
    student = create_model(cfg.student, num_classes=len(bundle.classes), data_shape=bundle.sample_shape,
                           data_mean=mean, data_std=std, classes=bundle.classes, task="classification", zoo=zoo)
    spe = steps_per_epoch(splits, cfg.data)
    ctx = RunContext(config=cfg, student=student, teacher=None, task="classification", classes=bundle.classes,
                     data_shape=bundle.sample_shape, seed=0, device=torch.device("cpu"), total_steps=10**6,
                     steps_per_epoch=spe, zoo=zoo, bundle=bundle, splits=splits)
    stack = build_stack(cfg.strategy, ctx, zoo)
    plan = make_plan(bundle, splits, cfg.data, 0, False)
    return Trainer(ctx, stack, plan), plan


def samples_per_second(trainer: Trainer, plan, steps: int, batch_size: int) -> float:
    trainer.train_step(0)  # warm-up: starts the workers, first allocations
    start = time.perf_counter()
    for step in range(1, steps + 1):
        trainer.train_step(step)
    seconds = time.perf_counter() - start
    plan.close()
    return steps * batch_size / seconds


def speed(fmnist: str, steps: int, repeats: int, workers: int, zoo) -> None:
    base = {"name": "fashion-mnist", "root": fmnist, "batch_size": 128, "augment": "shift", "num_workers": workers}
    bundle = load_dataset("fashion-mnist", fmnist, zoo)
    results: dict[str, list[float]] = {"memory": [], "stream": []}
    for _ in range(repeats):  # interleaved, so drifting load on a shared machine hits both alike
        for loader in ("memory", "stream"):
            trainer, plan = trainer_for(dict(base, loader=loader), zoo, bundle)
            results[loader].append(samples_per_second(trainer, plan, steps, 128))
    mem, stream = statistics.median(results["memory"]), statistics.median(results["stream"])
    print(f"training samples/s, lenet5 ce, Fashion-MNIST 28x28, batch 128, augment shift, {steps} steps, "
          f"median of {repeats}:")
    print(f"  in-memory            {mem:8.0f}   (repeats {', '.join(f'{v:.0f}' for v in results['memory'])})")
    streamed = ", ".join(f"{v:.0f}" for v in results["stream"])
    print(f"  streaming, {workers} workers {stream:8.0f}   (repeats {streamed})")
    print(f"  streaming / in-memory: {stream / mem:.2f}x (goal >= 0.8x)")


def transform_cost(fmnist: str, zoo, n: int = 2000) -> None:
    from kdzoo.data.stream import to_pil

    bundle = load_dataset("fashion-mnist", fmnist, zoo)
    images = [to_pil(bundle, i) for i in range(n)]
    for label, policy in (("rrc + flip", None), ("rrc + flip + RandAugment m9", "rand-m9-mstd0.5")):
        transform = build_train_transform(make_config({"data": {"augment": "timm", "auto_augment": policy}}).data, 1,
                                          (28, 28))
        start = time.perf_counter()
        for img in images:
            transform(img)
        rate = n / (time.perf_counter() - start)
        print(f"timm PIL transform alone ({label}), 28x28 grey, one process: {rate:8.0f} images/s")


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_pss_mib() -> float:
    """PSS of this process and all its children (the loader's workers), MiB."""
    me = os.getpid()
    children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    return (pss_kib(me) + sum(pss_kib(int(c)) for c in children)) / 1024


def write_images(folder: Path, count: int, size: int = 256) -> None:
    """Uncompressed BMP images of noise in 10 class folders (each ~size*size*3 bytes on disk)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / f"c{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        side = size + int(rng.integers(-16, 17))  # sizes vary per image
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(sub / f"{i}.bmp")


def subset(big: Path, small: Path, count: int) -> None:
    """Hard links to the first ``count`` images of ``big`` (no extra disk space)."""
    files = sorted(big.rglob("*.bmp"), key=lambda p: int(p.stem))[:count]
    for f in files:
        target = small / f.parent.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(f, target)


def memory(scratch: Path, gb: float, workers: int, zoo, steps: int = 120) -> None:
    big, small = scratch / "big", scratch / "small"
    count = int(gb * 1e9 / (256 * 256 * 3 + 54))
    if not big.exists():
        t0 = time.time()
        write_images(big, count)
        print(f"wrote {count} images in {time.time() - t0:.0f} s")
    if not small.exists():
        subset(big, small, count // 10)
    for folder in (small, big):
        on_disk = sum(f.stat().st_size for f in folder.rglob("*.bmp")) / 1e9
        data = {"name": f"imagefolder:{folder}", "batch_size": 64, "augment": "timm", "num_workers": workers,
                "image_size": [64, 64], "loader": "stream"}
        trainer, plan = trainer_for(data, zoo)
        peak, stop = [0.0], threading.Event()

        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], tree_pss_mib())
                time.sleep(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        start = time.perf_counter()
        for step in range(steps):
            trainer.train_step(step)
        rate = steps * 64 / (time.perf_counter() - start)
        stop.set()
        thread.join()
        plan.close()
        print(f"streaming memory, {on_disk:5.2f} GB image folder ({len(trainer.ctx.bundle.x)} images, 64x64 crops, "
              f"timm augment, {workers} workers, {steps} steps): peak PSS main + workers {peak[0]:7.0f} MiB, "
              f"{rate:.0f} samples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmnist", required=True, help="folder holding the four Fashion-MNIST IDX files")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--images-gb", type=float, default=2.1)
    parser.add_argument("--scratch", default="/tmp/kdzoo-data-paths")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic image folders")
    parser.add_argument("--skip", nargs="*", default=[], choices=["speed", "transform", "memory"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    zoo = load_zoo()
    if "speed" not in args.skip:
        speed(args.fmnist, args.steps, args.repeats, args.workers, zoo)
    if "transform" not in args.skip:
        transform_cost(args.fmnist, zoo)
    if "memory" not in args.skip:
        scratch = Path(args.scratch)
        try:
            memory(scratch, args.images_gb, args.workers, zoo)
        finally:
            if not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
