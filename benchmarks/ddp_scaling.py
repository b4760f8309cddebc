"""Samples/s of 1 vs 2 DDP processes (torchrun, gloo, CPU) for one teacher/student pair.

Usage: python benchmarks/ddp_scaling.py [--steps 150] [--repeats 5]

Same global batch and step budget on both sides; each side runs alternately ``--repeats`` times
and the median is reported, with the ratio printed in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PAIR = ["--teacher", "test_resnet", "--student", "lenet5", "--strategy", "kd", "--data", "mnist5k",
        "--labels-per-class", "100", "--no-progress"]


def run(cmd: list[str], env: dict, out: Path, name: str, steps: int, batch: int, threads: int) -> float:
    args = [*PAIR, "--steps", str(steps), "--threads", str(threads), "--set", f"data.batch_size={batch}",
            "--set", f"train.eval_every={steps}", "--out", str(out), "--name", name]
    subprocess.run([*cmd, "distill", *args], env=env, check=True, capture_output=True)
    summary = json.loads((out / name / "seed-0" / "summary.json").read_text())
    return steps * batch / summary["train_seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=256, help="global batch")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        env = dict(os.environ, KDZOO_CACHE=os.environ.get("KDZOO_CACHE", str(Path.home() / ".cache" / "kdzoo")),
                   OMP_WAIT_POLICY="PASSIVE")
        single = [sys.executable, "-m", "kdzoo"]
        ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "kdzoo"]
        run(single, env, out, "warmup", 2, args.batch, 2)  # trains and caches the teacher once
        rates: dict[str, list[float]] = {"1 process x 2 threads": [], "2 processes x 1 thread": []}
        for i in range(args.repeats):
            rates["1 process x 2 threads"].append(run(single, env, out, f"s{i}", args.steps, args.batch, 2))
            rates["2 processes x 1 thread"].append(run(ddp, env, out, f"d{i}", args.steps, args.batch, 1))
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in rates.items():
            print(f"{k:<24} median {med[k]:8.0f} samples/s   runs: {', '.join(f'{x:.0f}' for x in v)}")
        a, b = med["2 processes x 1 thread"], med["1 process x 2 threads"]
        print(f"ratio 2-process DDP / 1-process: {a / b:.2f}x  (test_resnet -> lenet5 KD, mnist5k, global batch {args.batch})")


if __name__ == "__main__":
    main()
