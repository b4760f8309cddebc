"""Training samples/s of the GPU speed switches: fp32 eager, bf16 AMP, channels_last, compile.

Usage: python benchmarks/gpu_speed.py [--steps 60] [--batch 256]

timm ``resnet18`` (teacher) -> ``resnet10t`` (student) at 32x32, batch 256, Hinton KD through the
kdzoo engine on random in-memory data (the step cost does not depend on the pixels). Each variant
runs in its own process, alternating, median of ``--repeats``; the speed-up over fp32 eager is
printed in the same run. Without CUDA it runs on CPU (smaller defaults) so the script stays tested.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

VARIANTS = {
    "fp32 eager": {"amp": "off", "channels_last": "off", "compile": False},
    "bf16 AMP": {"amp": "on", "channels_last": "off", "compile": False},
    "channels_last": {"amp": "off", "channels_last": "on", "compile": False},
    "bf16 AMP + channels_last": {"amp": "on", "channels_last": "on", "compile": False},
    "compile": {"amp": "off", "channels_last": "off", "compile": True},
    "bf16 AMP + channels_last + compile": {"amp": "on", "channels_last": "on", "compile": True},
}

CHILD = r"""
import json, sys, time, torch
from kdzoo.config import make_config
from kdzoo.contract.context import RunContext
from kdzoo.data import BatchPlan, DatasetBundle, make_splits, steps_per_epoch
from kdzoo.models.wrapper import create_model
from kdzoo.zoo.plugins import load_zoo
from kdzoo.zoo.stack import build_stack
from kdzoo.train.trainer import Trainer
opts, steps, batch, device = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
zoo = load_zoo()
n = batch * 8
bundle = DatasetBundle(torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8), torch.arange(n) % 10,
                       classes=[str(i) for i in range(10)], name="random")
cfg = make_config({"teacher": "resnet18", "student": "resnet10t", "strategy": "kd",
                   "data": {"name": "random", "batch_size": batch},
                   "train": {"steps": steps + 10, "eval_every": 10 ** 9}, "runtime": dict(opts, device=device, progress=False)})
splits = make_splits(bundle, cfg.data)
dev = torch.device(device)
def build(m):
    return create_model(m, num_classes=10, data_shape=(3, 32, 32), data_mean=[0.5] * 3, data_std=[0.25] * 3,
                        classes=bundle.classes, task="classification", zoo=zoo).to(dev)
teacher, student = build(cfg.teacher), build(cfg.student)
ctx = RunContext(config=cfg, student=student, teacher=teacher, task="classification", classes=bundle.classes,
                 data_shape=(3, 32, 32), seed=0, device=dev, total_steps=steps + 10,
                 steps_per_epoch=steps_per_epoch(splits, cfg.data), zoo=zoo, bundle=bundle, splits=splits)
stack = build_stack(cfg.strategy, ctx, zoo).to(dev)
trainer = Trainer(ctx, stack, BatchPlan(bundle, splits, cfg.data, 0, True))
for s in range(10):  # warm-up (and compilation)
    trainer.train_step(s)
if dev.type == "cuda":
    torch.cuda.synchronize()
t0 = time.perf_counter()
for s in range(10, steps + 10):
    trainer.train_step(s)
if dev.type == "cuda":
    torch.cuda.synchronize()
print(json.dumps({"samples_per_s": steps * batch / (time.perf_counter() - t0)}))
"""


def main() -> None:
    import torch

    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=60 if cuda else 5)
    p.add_argument("--batch", type=int, default=256 if cuda else 32)
    p.add_argument("--repeats", type=int, default=3 if cuda else 1)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    args = p.parse_args()
    device = "cuda" if cuda else "cpu"
    names = [v for v in args.variants.split(",") if v]
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for name in names:
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(VARIANTS[name]), str(args.steps),
                                  str(args.batch), device], capture_output=True, text=True, check=True)
            rates[name].append(json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"])
    base = statistics.median(rates[names[0]])
    print(f"resnet18 -> resnet10t KD, 32x32, batch {args.batch}, device {device} "
          f"({torch.cuda.get_device_name() if cuda else 'CPU'})")
    for name in names:
        med = statistics.median(rates[name])
        print(f"{name:<36} {med:9.0f} samples/s   {med / base:5.2f}x")


if __name__ == "__main__":
    main()
