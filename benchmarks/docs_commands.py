"""Run every `kdzoo` command of README.md and docs/user-guide.md as written, in page order, in a scratch
folder; print each command's exit code and wall time.

    python benchmarks/docs_commands.py            # skips the multi-minute benches and placeholder commands
    python benchmarks/docs_commands.py --all      # also `kdzoo bench --suite default` (~15 min on 2 cores)

The YAML files the guide shows (`# run.yaml` blocks) are written first and the Python blocks that make a
file (`# my_resnet.pth: ...`) are run, so `-c run.yaml` and `--teacher my_resnet.pth` find them. Commands
naming a placeholder (`FOLDER`, `runs/NAME`, `my-suite.yaml`, a timm `output/train` checkpoint) are listed
as skipped. tests/test_docs_commands.py checks in CI that every command parses and builds its config.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "user-guide.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
PLACEHOLDERS = re.compile(r"\bFOLDER\b|runs/NAME\b|RUN_A|my-suite\.yaml|runs/my-bench|output/train/")
LONG = re.compile(r"--suite (default|fashion|fashion-breadth|cifar100-mdistiller)\b(?!.*--list)")


def blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def commands(text: str) -> list[str]:
    out = []
    for block in blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith((".venv/bin/kdzoo ", "kdzoo ")):
                out.append(line.removeprefix(".venv/bin/"))
    return out


def prepare(folder: Path) -> None:
    """Write the pages' named YAML files and run their file-making Python blocks in ``folder``."""
    for page in PAGES:
        text = page.read_text()
        for block in blocks(text, "yaml"):
            match = re.match(r"# ([\w.-]+\.yaml)", block)
            if match:
                (folder / match.group(1)).write_text(block)
        for block in blocks(text, "python"):
            if re.match(r"# [\w.-]+\.(pth|pt|safetensors)\b", block):
                subprocess.run([sys.executable, "-c", block], cwd=folder, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="also run the multi-minute benches")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kdzoo-docs-"))
    env = dict(os.environ, KDZOO_CACHE=str(folder / "cache"), KDZOO_INDEX=str(folder / "index.sqlite"),
               OMP_WAIT_POLICY="PASSIVE")
    prepare(folder)
    failed = 0
    for page in PAGES:
        for command in commands(page.read_text()):
            if PLACEHOLDERS.search(command) or (LONG.search(command) and not args.all):
                print(f"skip   {page.name}: {command}")
                continue
            start = time.time()
            done = subprocess.run([sys.executable, "-m", "kdzoo", *shlex.split(command)[1:], *(
                ["--no-progress"] if command.split()[1] in ("distill", "teacher", "bench") and "--resume" not in command
                else [])], cwd=folder, env=env, capture_output=True, text=True)
            status = "ok" if done.returncode == 0 else f"rc={done.returncode}"
            failed += done.returncode != 0
            last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
            print(f"{status:<6} {time.time() - start:6.1f} s  {page.name}: {command}\n         {last[:160]}")
            if done.returncode:
                print("         " + done.stderr.strip()[-400:])
    print(f"{failed} failed; scratch folder {folder}" + ("" if args.keep else " (removed)"))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(folder)])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
