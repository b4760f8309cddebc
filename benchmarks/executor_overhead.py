"""Per-cell overhead of the ``slurm`` and ``ray`` executors against ``local``, same process model.

Usage::

    python benchmarks/executor_overhead.py [--cells 4] [--executors local,slurm,ray] [--json OUT]

Each executor runs ``--cells`` fresh bench cells (a tiny digits cell: a linear student, 2 steps),
one at a time, each in a fresh process: ``local`` spawns one per cell
(:class:`kdzoo.bench.executors.local.LocalExecutor`), ``slurm`` submits one job per cell, ``ray``
one task per cell. A cell's time is from submission to the executor reporting it done; the overhead
of an executor is its mean cell time minus ``local``'s (goal: at most 2 s). The teacher is trained
once before any timing. Without ``SLURM_CONF`` a throw-away single-node Slurm is started with
``tests/cluster/slurm_cluster.sh`` (and stopped); ``ray`` joins ``RAY_ADDRESS`` or starts a local Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def suite(cells: int) -> dict:
    return {"name": "overhead", "seeds": list(range(cells)), "tasks": [{
        "name": "digits", "data": {"name": "digits", "labels_per_class": 10}, "steps": 2,
        "teacher_train": {"epochs": 1}, "strategies": ["ce"],
        "pairs": [{"teacher": {"name": "mlp", "kwargs": {"hidden": [16]}}, "student": {"name": "linear"}}]}]}


def time_cells(name: str, cells: list, out: Path, zoo) -> list[float]:
    """Seconds from submission to done for each cell, run one after another on executor ``name``."""
    from kdzoo.bench.executors import make_executor
    from kdzoo.bench.executors.drive import cell_resources, cell_task

    executor = make_executor(name, {}, zoo)
    seconds = []
    try:
        for cell in cells:
            task = cell_task(cell, name, out, cell_resources(cell, {}, {}))
            start = time.perf_counter()
            [handle] = executor.submit([task])
            while True:
                state = executor.poll([handle])[cell.key]
                if state.state == "done":
                    break
                if state.state == "failed":
                    raise RuntimeError(f"{name}: {cell.label}: {state.error}")
                time.sleep(0.1)
            seconds.append(time.perf_counter() - start)
    finally:
        executor.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--executors", default="local,slurm,ray")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    names = args.executors.split(",")
    work = Path(tempfile.mkdtemp(prefix="kdzoo-overhead-"))
    os.environ.setdefault("KDZOO_CACHE", str(work / "cache"))
    os.environ.setdefault("KDZOO_INDEX", str(work / "index.sqlite"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    slurm_state = None
    if "slurm" in names and not os.environ.get("SLURM_CONF"):
        slurm_state = work / "slurm"
        subprocess.run([str(ROOT / "tests/cluster/slurm_cluster.sh"), "up", str(slurm_state)], check=True,
                       stdout=subprocess.DEVNULL)
        os.environ["SLURM_CONF"] = str(slurm_state / "slurm.conf")
    from kdzoo.bench.suite import _prepare_teachers, expand_all
    from kdzoo.zoo.plugins import load_zoo

    zoo = load_zoo()
    results = {}
    try:
        for name in names:
            cells = expand_all(suite(args.cells), zoo, work / name)[0]
            _prepare_teachers(cells, zoo, lambda *a, **k: None)
            results[name] = time_cells(name, cells, work / name, zoo)
    finally:
        if slurm_state is not None:
            subprocess.run([str(ROOT / "tests/cluster/slurm_cluster.sh"), "down", str(slurm_state)], check=False)
    base = statistics.mean(results["local"]) if "local" in results else None
    print(f"{'executor':<8} {'cells':>5} {'mean s/cell':>12} {'min':>7} {'max':>7} {'overhead vs local':>18}")
    for name, seconds in results.items():
        extra = "" if base is None or name == "local" else f"{statistics.mean(seconds) - base:+.2f} s"
        print(f"{name:<8} {len(seconds):>5} {statistics.mean(seconds):>12.2f} {min(seconds):>7.2f} {max(seconds):>7.2f} "
              f"{extra:>18}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": results, "cpus": os.cpu_count(),
                                               "python": sys.version.split()[0]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
