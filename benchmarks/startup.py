"""Fixed cost per command: kdzoo's startup against the floor of importing torch and timm, in one run.

Usage: python benchmarks/startup.py [--repeats 5] [--data mnist5k]

Prints the median wall time (and min/max) of ``--repeats`` fresh processes, alternating commands so
machine load hits every row alike:
  * ``kdzoo --help`` (goal <= 0.5 s) and ``kdzoo strategies`` (both read the listing cache; no torch);
  * ``kdzoo --version``;
  * a 1-step ``kdzoo distill`` (``ce``, ``linear`` student on ``--data``, no teacher, no progress bar);
  * ``python -c "import torch, timm"``, the floor every training command pays (goal: 1-step distill
    <= 1.3x of it).
One untimed warm-up of each command fills the listing and dataset caches first, as any second run
on a machine finds them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def commands(data: str, out: str) -> dict[str, list[str]]:
    kdzoo = [sys.executable, "-m", "kdzoo"]
    return {
        "kdzoo --help": kdzoo + ["--help"],
        "kdzoo --version": kdzoo + ["--version"],
        "kdzoo strategies": kdzoo + ["strategies"],
        f"kdzoo distill (1 step, {data})": kdzoo + ["distill", "--student", "linear", "--strategy", "ce", "--data", data,
                                                  "--steps", "1", "--no-progress", "--threads", "1", "--out", out],
        'python -c "import torch, timm"': [sys.executable, "-c", "import torch, timm"],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default="mnist5k")
    args = parser.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as out:
        cmds = commands(args.data, out)
        for argv in cmds.values():  # warm-up: listing cache, dataset cache, page cache
            timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.repeats):
            for name, argv in cmds.items():
                times[name].append(timed(argv, env))
    floor = statistics.median(times['python -c "import torch, timm"'])
    print(f"median of {args.repeats} fresh processes (min-max), python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<36} {median:6.2f} s  ({min(values):.2f}-{max(values):.2f})  {median / floor:5.2f}x import torch, timm")


if __name__ == "__main__":
    main()
