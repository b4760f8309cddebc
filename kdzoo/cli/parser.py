"""The ``kdzoo`` argument parser: every built-in command's flags, their help and shell completion.

It owns what a user can type: the subcommands and their options (``--help`` text, defaults,
choices), the completers argcomplete reads from the listing snapshot, ``--version``, and the
one-line error of a bad flag. It imports no torch, so ``--help`` and completion stay fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from ..zoo.listing import version_text

DOCS = "https://github.com/kdzoo/kdzoo/blob/main/docs/user-guide.md"
HELP_EPILOG = {
    "distill": f"""example:
  kdzoo distill --teacher mlp --student linear --strategy kd --data digits --labels-per-class 20 --seeds 0,1,2

  The teacher is trained once and cached; the run directory (runs/NAME) holds the config, each
  seed's metrics and exported student, and summary.json. Compare two runs with kdzoo compare.
docs: {DOCS}#kdzoo-distill""",
    "teacher": f"""example:
  kdzoo teacher --teacher mlp --data digits --epochs 30

  Prints the teacher's name, val and test metrics as one JSON line on stdout.
docs: {DOCS}#teachers""",
}



class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (and exit 2) like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"kdzoo: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser(listing: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The whole command line; plugin commands and completions come from the listing snapshot."""

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    p = _Parser(prog="kdzoo", description="Knowledge-distillation strategy zoo.", parents=[common])
    p.add_argument("--version", action=_VersionAction,
                   help="show kdzoo's version and every installed plugin distribution's")
    listing = listing or {}
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parser = sub.add_parser
    sub.add_parser = lambda *a, **k: add_parser(*a, parents=[common], **k)  # --debug after the subcommand too

    s = sub.add_parser("strategies", help="list installed strategies")
    s.add_argument("--json", action="store_true", help="machine-readable output (a JSON list) on stdout")
    s = sub.add_parser("plugins", help="list plugin distributions, their hooks and load errors")
    s.add_argument("--json", action="store_true", help="machine-readable output (a JSON list) on stdout")
    s = sub.add_parser("models", help="list registered (non-timm) models")
    s.add_argument("--json", action="store_true", help="machine-readable output (a JSON list) on stdout")
    s = sub.add_parser("datasets", help="list registered datasets")
    s.add_argument("--json", action="store_true", help="machine-readable output (a JSON list) on stdout")

    for name, help_ in (("distill", "distil a teacher into a student"), ("teacher", "train and cache a teacher")):
        s = sub.add_parser(name, help=help_, description=f"{help_[0].upper()}{help_[1:]}.", epilog=HELP_EPILOG[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("-c", "--config", help="YAML run config (loaded safely); flags override its keys "
                       "(default: none, every key at its default)")
        _complete(s.add_argument("--teacher", help="timm/registered model name, or a weights file/folder "
                                 "(default: none, a labels-only run)"),
                  _names(listing, "models") + listing.get("timm_models", []))
        _complete(s.add_argument("--data", help="dataset: digits, mnist5k, diabetes, imagefolder:PATH, mnist, cifar10, "
                                 "... (default: mnist5k)"),
                  _names(listing, "datasets"))
        s.add_argument("--data-root",
                       help="local folder of torchvision datasets (default: none; nothing is downloaded)")
        s.add_argument("--epochs", type=float, help="passes over the training split (default: the dataset's "
                       "default budget, else 10; --steps wins)" if name == "distill" else
                       "the teacher's passes over the training split (default: 15)")
        s.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
        s.add_argument("--device", choices=["cpu", "cuda", "auto"],
                       help="cpu, cuda, or auto (cuda when available) (default: cpu; under torchrun cuda:LOCAL_RANK)")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="dotted config override, repeatable, e.g. optim.lr=0.01 (default: none)")
        s.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown on a terminal)")
        if name == "distill":
            _complete(s.add_argument("--student", help="timm or registered model name, or a weights file/folder "
                                     "to start from (default: lenet5)"),
                      _names(listing, "models") + listing.get("timm_models", []))
            s.add_argument("--strategy", help="strategy or stack, e.g. kd or weight-selection+kd; kdzoo strategies "
                           "lists them (default: ce, labels only)").completer = \
                _stack_completer(_names(listing, "strategies"))
            s.add_argument("--labels-per-class", type=int, help="labelled training samples per class; the rest of "
                           "the training split is kept unlabelled, for strategies that distil on it "
                           "(default: every label)")
            s.add_argument("--steps", type=int,
                           help="optimiser steps per seed; overrides --epochs (default: from --epochs)")
            s.add_argument("--seeds", help="comma-separated run seeds, e.g. 0,1,2 (default: 0)")
            s.add_argument("--out", help="parent folder of run directories (default: runs)")
            s.add_argument("--name", help="run directory name (default: STRATEGY_STUDENT_DATA_DATE-TIME)")
            s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (default: a new run)")

    s = sub.add_parser("eval", help="evaluate an exported model on a dataset's split")
    s.add_argument("model", help="an exported .safetensors file")
    s.add_argument("--data", required=True, help="the dataset to evaluate on (the model's own, e.g. digits)")
    s.add_argument("--data-root", help="local folder of torchvision datasets (default: none)")
    s.add_argument("--split", choices=["test", "val"], default="test", help="which split (default: test)")
    s.add_argument("--split-seed", type=int, default=0, help="data.split_seed of the run that trained it (default: 0)")

    s = sub.add_parser("bench", help="run a benchmark suite side by side (finished cells are reused)")
    _complete(s.add_argument("--suite", help="a suite in registry.yaml (bench --list shows them) or a YAML file "
                             "(default: smoke)"), _names(listing, "suites"))
    s.add_argument("--out", help="bench directory (default: runs/bench-SUITE)")
    s.add_argument("--jobs", type=int, default=1, help="cells in parallel worker processes (default: 1)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown on a terminal)")
    s.add_argument("--list", action="store_true", help="list the bundled suites; with --suite, print that suite's "
                   "cells (and which are reused) without running")
    s.add_argument("--data-root", help="where this machine keeps the suite's data files (replaces data.root of every "
                   "task that reads a folder, e.g. the fashion suite's Fashion-MNIST folder) "
                   "(default: each task's data.root)")
    _tune_parser(sub, listing)
    _executor_arguments(s)
    s = sub.add_parser("report", help="rebuild and open a bench's HTML report")
    s.add_argument("bench_dir", help="a bench directory (the --out of kdzoo bench) or a results JSON file")
    s.add_argument("--no-open", action="store_true",
                   help="do not open a browser (none is opened under CI or without a display either)")
    s = sub.add_parser("runs", help="list recorded runs and benches (SQLite index)")
    s.add_argument("--kind", choices=["run", "bench"], help="only runs or only benches (default: both)")
    s.add_argument("--strategy", help="only runs of this strategy (default: any)")
    s.add_argument("--data", help="only runs on this dataset (default: any)")
    s.add_argument("--student", help="only runs of this student model (default: any)")
    s.add_argument("--json", action="store_true", help="machine-readable output (a JSON list) on stdout")

    s = sub.add_parser("compare", help="paired verdict of run A against run B (the project's 'beats' rule)")
    s.add_argument("run_a", help="the run claimed to be better (a run directory)")
    s.add_argument("run_b", help="the run it is compared against, e.g. the ce baseline")
    s = sub.add_parser("cache", help="list or clear cached teachers, teacher-output stores, datasets and splits")
    s.add_argument("action", nargs="?", choices=["list", "clear"], default="list",
                   help="list the entries, or clear the selected ones (default: list)")
    s.add_argument("--kind", action="append", default=[],
                   choices=["teachers", "teacher-outputs", "datasets", "splits", "listing"],
                   help="only this kind, repeatable (default: every kind)")
    s.add_argument("--key", action="append", default=[], help="only entries whose key starts with this, repeatable "
                   "(default: any key)")
    s.add_argument("--older-than", type=float, metavar="DAYS", help="only entries last written more than DAYS days ago "
                   "(default: any age)")
    s.add_argument("--all", action="store_true", help="with clear and no other filter: clear everything (default: off)")
    s.add_argument("--json", action="store_true", help="machine-readable output (a JSON list) on stdout")
    s = sub.add_parser("completion", help="print the shell completion script (eval \"$(kdzoo completion bash)\")")
    s.add_argument("shell", choices=["bash", "zsh"], help="the shell to print the script for")

    for command in listing.get("commands", []):  # plugins' commands: main() dispatches them with their own parser
        sub.add_parser(command["name"], help=f"{command['help']} [{command['distribution']}]")
    return p


def _tune_parser(sub: Any, listing: dict[str, Any]) -> None:
    """``kdzoo tune``: a run config (as for distill), a suite's tuned rows, or a worker on an existing study."""
    s = sub.add_parser(
        "tune", help="select a strategy's parameters and the learning rate on validation (Optuna; kdzoo[tune])",
        description="Tune a strategy's declared parameters and the learning rate on the validation split: Optuna's "
                    "seeded TPE sampler, a median pruner on validation accuracy, tuning seeds apart from the table's. "
                    "The test split is never built. Give a run config (-c/--strategy/...), or --suite to run the "
                    "studies a suite's 'params: tuned' rows need, or --study with --storage to add a worker to a study.")
    s.add_argument("-c", "--config",
                   help="YAML run config whose strategy is tuned, loaded safely (default: none, flags only)")
    _complete(s.add_argument("--teacher", help="timm/registered model name, or a weights file/folder (default: none)"),
              _names(listing, "models") + listing.get("timm_models", []))
    _complete(s.add_argument("--student", help="timm or registered model name (default: lenet5)"),
              _names(listing, "models") + listing.get("timm_models", []))
    s.add_argument("--strategy", help="strategy or stack to tune, e.g. kd; ce tunes the learning rate alone "
                   "(default: ce)").completer = \
        _stack_completer(_names(listing, "strategies"))
    _complete(s.add_argument("--data", help="dataset, as for kdzoo distill (default: mnist5k)"),
              _names(listing, "datasets"))
    s.add_argument("--data-root", help="local root of file datasets (default: none)")
    s.add_argument("--steps", type=int, help="each trial's step budget (default: the config's)")
    s.add_argument("--epochs", type=float, help="each trial's budget in epochs (default: the config's)")
    s.add_argument("--threads", type=int, help="torch threads per trial process (default: torch's choice)")
    s.add_argument("--device", choices=["cpu", "cuda", "auto"], help="cpu, cuda, or auto (default: cpu)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted config override, repeatable (default: none)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.add_argument("--suite", help="tune every 'params: tuned' row of this suite (registry name or YAML file), "
                   "with the suite's tune: settings; studies go to OUT/studies (default: none)")
    s.add_argument("--study", help="worker mode: run trials of this existing study, needs --storage "
                   "(default: none, a new study)")
    s.add_argument("--trials", type=int, help="finished trials the study ends with; a re-run continues (default: 20)")
    s.add_argument("--out", dest="study_out", metavar="OUT", help="study folder; with --suite, the bench "
                   "folder (default: runs/tune/STUDY; with --suite runs/bench-SUITE)")
    s.add_argument("--storage", help="Optuna database URL shared by workers (default: sqlite in the study folder), "
                   "e.g. sqlite:////shared/tune.db or postgresql://host/db")
    s.add_argument("--seeds", dest="tune_seeds", metavar="SEEDS", help="tuning seeds, comma-separated, never the "
                   "config's train.seeds (default: 1000)")
    s.add_argument("--search", action="append", default=[], metavar="PARAM=LOW:HIGH[:log]",
                   help="search range replacing the declared ones, e.g. kd.temperature=1:16:log, repeatable "
                   "(default: the declared ranges)")
    s.add_argument("--lr-range", metavar="LOW:HIGH[:log]", help="learning-rate range (default: lr/10:lr*10:log)")
    s.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default: 0)")
    s.add_argument("--jobs", type=int, default=1, help="worker processes on the study at once (default: 1)")


class _VersionAction(argparse.Action):
    """``--version``: kdzoo's version, then each plugin distribution (entry-point group ``kdzoo``) with its own."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sys.stdout.write(version_text())
        parser.exit(0)


def _names(listing: dict[str, Any], table: str) -> list[str]:
    return [row["name"] for row in listing.get(table, [])]


def _complete(action: argparse.Action, names: list[str]) -> None:
    """Complete ``action``'s value from ``names`` (argcomplete reads ``action.completer``)."""
    action.completer = lambda prefix, **kwargs: [n for n in names if n.startswith(prefix)]


def _stack_completer(names: list[str]):
    """Complete the last member of a stack: ``weight-selection+k`` offers ``weight-selection+kd``."""
    def complete(prefix: str, **kwargs: Any) -> list[str]:
        head, plus, last = prefix.rpartition("+")
        taken = set(head.split("+")) if plus else set()
        return [f"{head}{plus}{n}" for n in names if n.startswith(last) and n not in taken]

    return complete



def _executor_arguments(s: argparse.ArgumentParser) -> None:
    """``kdzoo bench``'s flags for running cells on a scheduler (docs/cluster.md)."""
    s.add_argument("--executor", help="where cells run: local (default: worker processes here), slurm (one job per "
                   "cell; pip install 'kdzoo[slurm]'), ray (one task per cell; pip install 'kdzoo[ray]'), or a "
                   "plugin's; default: the suite's executor key")
    s.add_argument("--status", action="store_true", help="list each cell as done, queued, running (with its job or "
                   "task id), failed or to run, without running anything")
    s.add_argument("--detach", action="store_true", help="submit the cells and return; the same command later "
                   "waits for and collects them (slurm)")
    s.add_argument("--ray-address", help="the Ray cluster to join, e.g. auto or ray://HOST:10001 "
                   "(default: $RAY_ADDRESS, else a local Ray)")
    s.add_argument("--gpus", type=int, help="GPUs per cell; more than one runs DDP under torchrun inside the job "
                   "(default: the task's resources, else 0)")
    s.add_argument("--cpus", type=int, help="CPU cores per cell (default: the task's resources, else 1)")
    s.add_argument("--mem", help="memory per cell, as Slurm writes it, e.g. 8G "
                   "(default: the task's resources, else the partition's)")
    s.add_argument("--time", type=int, help="time limit per cell in minutes, slurm "
                   "(default: the task's resources, else the partition's)")
    s.add_argument("--partition", help="Slurm partition (default: the cluster's default partition)")
    s.add_argument("--account", help="Slurm account (default: your default account)")
    s.add_argument("--sbatch", action="append", default=[], metavar="FLAG",
                   help="an extra sbatch flag for every cell, e.g. --sbatch=--qos=high, repeatable (default: none)")
