"""Integrity drills as real processes: double resumes and damaged files, repeated.

Usage: python benchmarks/integrity_drills.py [--trials 10] [--steps 300] [--out DIR]

1. Double resume: a run made to look killed at step 0 is resumed by two ``kdzoo distill --resume``
   processes started together, ``--trials`` times. A trial passes when one resume trains it and the
   other is refused (exit 2, "is owned by") or finds it finished (exit 0), every evaluation is logged
   once, and the run index gets one row.
2. Damaged files: a run checkpoint and a cached teacher, each with 64 zeroed bytes, a truncation and
   1,000 overwritten bytes. A run checkpoint must end in a one-line error (exit 2) and, once removed,
   resume to the numbers of the undamaged run; a cached teacher must be moved aside and rebuilt (one
   line) with the run's numbers unchanged.

Prints one line per trial and a summary; exits 1 if any trial fails. The tests hold two of the
double-resume trials and one of each damage (``tests/test_integrity.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = ["distill", "--student", "linear", "--data", "digits", "--no-progress", "--threads", "1"]
KD = ["distill", "--teacher", "mlp", "--student", "linear", "--data", "digits", "--strategy", "kd", "--steps", "20",
      "--no-progress", "--threads", "1"]


def kdzoo(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdzoo", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def interrupted(run: Path) -> None:
    for file in (run / "summary.json", run / "seed-0" / "summary.json", run / "seed-0" / "checkpoint.pt",
                 run / "seed-0" / "checkpoint.prev.pt"):
        file.unlink(missing_ok=True)
    (run / "status.json").write_text(json.dumps({"state": "interrupted"}))


def double_resume(root: Path, env: dict[str, str], trials: int, steps: int) -> int:
    run = root / "runs" / "r"
    code, _, err = finish(kdzoo(*RUN, "--steps", str(steps), "--set", "train.eval_every=10", "--out",
                                str(root / "runs"), "--name", "r", env=env))
    assert code == 0, err
    failures = 0
    for trial in range(trials):
        interrupted(run)
        index = root / f"index-{trial}.sqlite"
        trial_env = dict(env, KDZOO_INDEX=str(index))
        started = time.perf_counter()
        a, b = kdzoo("distill", "--resume", str(run), env=trial_env), kdzoo("distill", "--resume", str(run), env=trial_env)
        results = [finish(a), finish(b)]
        codes = sorted(r[0] for r in results)
        steps_logged = [json.loads(line)["step"] for line in (run / "seed-0" / "metrics.jsonl").read_text().splitlines()]
        rows = sqlite3.connect(index).execute("SELECT state FROM runs WHERE path = ?", (str(run.resolve()),)).fetchall()
        refused = sum("is owned by" in r[2] for r in results)
        ok = codes in ([0, 0], [0, 2]) and steps_logged == list(range(10, steps + 1, 10)) and rows == [("done",)]
        failures += not ok
        print(f"double resume {trial + 1}/{trials}: exit codes {codes}, refused {refused}, "
              f"{len(steps_logged)} evaluations logged (expected {steps // 10}), {len(rows)} index row(s), "
              f"{time.perf_counter() - started:.1f} s -> {'ok' if ok else 'FAILED'}")
    return failures


def zero(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwrite(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = max(0, len(data) // 2 - 500)
    data[start:start + 1000] = bytes((i * 37 + 11) % 256 for i in range(len(data[start:start + 1000])))
    path.write_bytes(bytes(data))


def damaged_files(root: Path, env: dict[str, str]) -> int:
    failures = 0
    base = root / "ckpt-run"
    code, _, err = finish(kdzoo(*RUN, "--steps", "6", "--set", "train.checkpoint_every=2", "--out", str(root),
                                "--name", "ckpt-run", env=env))
    assert code == 0, err
    expected = json.loads((base / "seed-0" / "summary.json").read_text())["test_best"]
    for name, damage in (("zeroed", zero), ("truncated", truncate), ("overwritten", overwrite)):
        run = root / f"ckpt-{name}"
        shutil.copytree(base, run)
        for file in (run / "summary.json", run / "seed-0" / "summary.json"):
            file.unlink()
        (run / "status.json").write_text(json.dumps({"state": "interrupted"}))
        damage(run / "seed-0" / "checkpoint.pt")
        code, _, err = finish(kdzoo("distill", "--resume", str(run), env=env))
        one_line = code == 2 and len(err.strip().splitlines()) == 1 and "is damaged" in err
        (run / "seed-0" / "checkpoint.pt").unlink()
        code2, _, err2 = finish(kdzoo("distill", "--resume", str(run), env=env))
        same = code2 == 0 and json.loads((run / "seed-0" / "summary.json").read_text())["test_best"] == expected
        failures += not (one_line and same)
        print(f"run checkpoint, {name}: exit {code}, one line: {one_line}; removed, resumed from the previous "
              f"checkpoint: exit {code2}, same numbers: {same} -> {'ok' if one_line and same else 'FAILED'}")
    cache_env = dict(env, KDZOO_CACHE=str(root / "cache"))
    code, _, err = finish(kdzoo(*KD, "--out", str(root / "kd"), "--name", "first", env=cache_env))
    assert code == 0, err
    first = json.loads((root / "kd" / "first" / "summary.json").read_text())["test_best_mean"]
    [cached] = (root / "cache" / "teachers").glob("*/teacher.safetensors")
    for name, damage in (("zeroed", zero), ("truncated", truncate), ("overwritten", overwrite)):
        damage(cached)
        code, out, err = finish(kdzoo(*KD, "--out", str(root / "kd"), "--name", f"after-{name}", env=cache_env))
        lines = [line for line in out.splitlines() if "is damaged" in line]
        again = json.loads((root / "kd" / f"after-{name}" / "summary.json").read_text())["test_best_mean"] \
            if code == 0 else None
        ok = code == 0 and len(lines) == 1 and "moved aside" in lines[0] and again == first
        failures += not ok
        print(f"cached teacher, {name}: exit {code}, rebuilt with one line: {len(lines) == 1}, "
              f"same numbers: {again == first} -> {'ok' if ok else 'FAILED'}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="double-resume trials")
    parser.add_argument("--steps", type=int, default=300, help="steps of the resumed run")
    parser.add_argument("--out", help="work folder (default: a temporary one, removed at the end)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="kdzoo-drills-"))
    env = dict(os.environ, KDZOO_CACHE=str(root / "cache"), KDZOO_INDEX=str(root / "index.sqlite"),
               OMP_WAIT_POLICY="PASSIVE")
    try:
        failures = double_resume(root, env, args.trials, args.steps) + damaged_files(root, env)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'all drills passed' if not failures else f'{failures} drill(s) FAILED'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
