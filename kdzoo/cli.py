# PYTHON_ARGCOMPLETE_OK
"""The ``kdzoo`` command line: a thin layer over the Python API.

Every error a user can cause prints one line (``kdzoo: error: ...``) and exits with code 2,
before anything is written. ``--help``, ``--version``, the listings and shell completion import no
torch: they read the listing cache (:mod:`kdzoo.zoo.listing`); machine output (``--json``, ``kdzoo
teacher``) is alone on stdout, logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from .contract.errors import Interrupted, KdzooError, error_line

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".tar", ".ckpt")
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
        from .zoo.listing import version_text

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


def _model_section(data: dict[str, Any], role: str, value: str) -> dict[str, Any]:
    """``--teacher``/``--student`` over the config's section: a model name, or a weights file or folder
    (then the name comes from the file unless the config gives one)."""
    section = dict(data[role]) if isinstance(data.get(role), dict) else {}
    path = _weights_path(value)
    if path:
        section["checkpoint"] = path
        if not section.get("name"):
            section["name"] = _name_from_file(path, f"{role} checkpoint")
    else:
        section["name"] = value
    return section


def _config_data(args: argparse.Namespace) -> dict[str, Any]:
    from .config import load_yaml

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    if args.teacher:
        data["teacher"] = _model_section(data, "teacher", args.teacher)
    section = lambda key: data.setdefault(key, {}) if isinstance(data.get(key, {}), dict) else data[key]  # noqa: E731
    if args.data:
        section("data")["name"] = args.data
    if args.data_root:
        section("data")["root"] = args.data_root
    if args.threads is not None:
        section("runtime")["threads"] = args.threads
    if args.device:
        section("runtime")["device"] = args.device
    if args.no_progress:
        section("runtime")["progress"] = False
    if getattr(args, "student", None):
        data["student"] = _model_section(data, "student", args.student)
    if getattr(args, "strategy", None):
        data["strategy"] = args.strategy
    if getattr(args, "labels_per_class", None) is not None:
        section("data")["labels_per_class"] = args.labels_per_class
    if getattr(args, "steps", None) is not None:
        section("train")["steps"] = args.steps
    if args.epochs is not None:
        section("train")["epochs"] = args.epochs
    if getattr(args, "seeds", None) is not None:  # --seeds "" is refused (no seed), never read as the default
        section("train")["seeds"] = args.seeds
    if getattr(args, "out", None):
        data["out"] = args.out
    if getattr(args, "name", None):
        data["name"] = args.name
    return data


def _weights_path(value: str) -> str | None:
    """The weights file or folder ``value`` names, or ``None`` for a model name.

    timm and kdzoo model names hold no '/'; timm's ``local-dir:FOLDER`` spelling is accepted too.
    """
    if value.startswith("local-dir:"):
        return value[len("local-dir:"):]
    path = Path(value)
    if value.endswith(WEIGHT_SUFFIXES) or "/" in value or os.sep in value or path.is_file() or (
            path / "config.json").is_file():
        return value
    return None


def _name_from_file(path: str, role: str) -> str:
    from .models.weights import model_name_from_file

    return model_name_from_file(path, role)


def cmd_distill(args: argparse.Namespace) -> int:
    from .config import make_config
    from .train.runs import distill

    if args.resume:
        distill(None, resume=args.resume)
        return 0
    config = make_config(_config_data(args), args.set)
    distill(config)
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    from .config import make_config
    from .zoo.plugins import load_zoo
    from .train.runs import task_teacher

    data = _config_data(args)
    if args.epochs is not None:
        data.setdefault("teacher_train", {})["epochs"] = args.epochs
        data.get("train", {}).pop("epochs", None)
    if not data.get("teacher"):
        raise KdzooError("kdzoo teacher needs --teacher MODEL")
    config = make_config(data, args.set)
    model = task_teacher(config, load_zoo(), log=_to_stderr)[0]  # stdout holds the JSON alone
    from .train.teacher import teacher_card

    card = teacher_card(config)
    print(json.dumps({"name": model.meta["name"], "val": model.meta.get("val"), "test": model.meta.get("test"),
                      **({"card": str(card)} if card else {})}))
    return 0


def _to_stderr(*args: Any, **kwargs: Any) -> None:
    print(*args, file=sys.stderr, **{k: v for k, v in kwargs.items() if k != "file"})


def cmd_list(args: argparse.Namespace) -> int:
    from .zoo.listing import listing

    snapshot = args.listing or listing()
    if args.command == "plugins":
        rows = snapshot["plugins"]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'plugin':<16} {'distribution':<16} {'version':<10} hooks")
        for r in [] if args.json else rows:
            status = f"ERROR {r['error']}" if r["error"] else ", ".join(r["hooks"])
            print(f"{r['name']:<16} {r['distribution']:<16} {r['version']:<10} {status}")
        return 0
    rows = snapshot[args.command]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    extra_header = f"{'family':<11} paper" if args.command == "strategies" else "description"
    print(f"{'name':<22} {'distribution':<16} {extra_header}")
    for r in rows:
        extra = f"{r['family']:<11} {r['paper']}" if args.command == "strategies" else r.get("description", "")
        if r.get("clash"):  # the bare name is ambiguous: say which names to use
            extra += f"  [clash: also {', '.join(r['clash'])}{'; pinned' if r.get('pinned') else ''}]"
        print(f"{r['name']:<22} {r['distribution']:<16} {extra}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .config import DataConfig
    from .data import load_dataset, make_splits
    from .bench.metrics import evaluate
    from .models.wrapper import load_model
    from .zoo.plugins import load_zoo

    zoo = load_zoo()
    model = load_model(args.model, zoo)
    bundle = load_dataset(args.data, args.data_root, zoo)
    splits = make_splits(bundle, DataConfig(name=args.data, split_seed=args.split_seed))
    if args.split == "test" and splits.official_test:
        x, y = bundle.test_x, bundle.test_y
    else:
        x, y = bundle.x, bundle.y
    if bundle.task == "classification" and model.meta.get("classes") != list(bundle.classes):
        raise KdzooError(f"model classes {model.meta.get('classes')} differ from {args.data}'s {bundle.classes}")
    metrics = evaluate(model, x, y, getattr(splits, args.split), bundle.task)
    print(json.dumps({"model": args.model, "data": args.data, "split": args.split, **metrics}))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .train.runs import compare_runs

    print(compare_runs(args.run_a, args.run_b))
    return 0


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


def _executor_settings(args: argparse.Namespace) -> dict:
    return {"executor": args.executor, "executor_options": {"address": args.ray_address},
            "resources": {"gpus": args.gpus, "cpus": args.cpus, "mem": args.mem, "time": args.time,
                          "partition": args.partition, "account": args.account, "sbatch": args.sbatch}}


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.suite import run_bench

    if args.jobs < 1:
        raise KdzooError(f"--jobs must be >= 1, got {args.jobs}")
    if args.list and args.suite is None:
        from .zoo.registry import suites_table

        print(suites_table())
        return 0
    args.suite = args.suite or "smoke"
    suite = Path(args.suite).stem if args.suite.endswith((".yaml", ".yml")) else args.suite
    settings = _executor_settings(args)
    if args.list or args.status:
        from .bench.suite import list_cells

        print(list_cells(args.suite, args.out or f"runs/bench-{suite}", data_root=args.data_root, status=args.status,
                         executor=settings["executor"], executor_options=settings["executor_options"]))
        return 0
    results = run_bench(args.suite, args.out or f"runs/bench-{suite}", jobs=args.jobs, progress=not args.no_progress,
                        data_root=args.data_root, detach=args.detach, **settings)
    if results.get("detached") is not None:
        return 0
    from .bench.report import markdown

    print(markdown(results))
    if results.get("failed"):
        cells = "; ".join(f"{r['task']} | {r['pair']} | {r['variant']} | seed {r['seed']}: {r['status']}"
                          for r in results["failed"])
        print(f"kdzoo: error: {len(results['failed'])} bench cell(s) failed (run the bench again to retry them): "
              f"{cells}", file=sys.stderr)
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .bench.tune import optuna_module

    optuna_module()  # without the extra: one line naming it, before anything is read
    if args.study:
        from .bench.tune import run_trials, write_outputs

        if not args.storage:
            raise KdzooError("--study needs --storage, the database URL the study lives in")
        study = run_trials(args.storage, args.study, args.trials, log=_to_stderr)
        if args.study_out:
            from .zoo.plugins import load_zoo

            write_outputs(args.storage, study.study_name, Path(args.study_out), load_zoo())
        states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
        print(json.dumps({"study": study.study_name, "trials": {s: states.count(s) for s in sorted(set(states))}}))
        return 0
    if args.suite:
        from .bench.tune_suite import tune_suite

        suite = Path(args.suite).stem if args.suite.endswith((".yaml", ".yml")) else args.suite
        summaries = tune_suite(args.suite, args.study_out or f"runs/bench-{suite}", trials=args.trials,
                               jobs=args.jobs, log=_to_stderr, data_root=args.data_root)
        print(json.dumps([_tune_line(s) for s in summaries], indent=2))
        return 0
    from .bench.tune import tune
    from .config import make_config

    config = make_config(_config_data(args), args.set)
    search = {}
    for item in args.search:
        key, eq, value = item.partition("=")
        if not eq:
            raise KdzooError(f"--search {item!r}: expected PARAM=LOW:HIGH[:log], e.g. kd.temperature=1:16:log")
        search[key.strip()] = value.strip()
    seeds = None
    if args.tune_seeds:
        try:
            seeds = [int(s) for s in args.tune_seeds.split(",") if s.strip()]
        except ValueError:
            raise KdzooError(f"--seeds {args.tune_seeds!r}: expected comma-separated integers, e.g. 1000,1001") from None
    summary = tune(config, trials=20 if args.trials is None else args.trials, out=args.study_out, storage=args.storage,
                   seeds=seeds, search=search or None, lr_range=args.lr_range, sampler_seed=args.sampler_seed, jobs=args.jobs,
                   log=_to_stderr)
    print(json.dumps(_tune_line(summary), indent=2))
    return 0


def _tune_line(summary: dict[str, Any]) -> dict[str, Any]:
    return {"study": summary["study"], "trials": summary["trials"], "best": summary.get("best")}


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import run_command

    print(run_command(args.action, kinds=args.kind, keys=args.key, older_than_days=args.older_than,
                      everything=args.all, as_json=args.json))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .bench.report import open_report

    print(open_report(args.bench_dir, open_browser=not args.no_open))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .bench.runindex import query

    rows = query(args.kind, strategy=args.strategy, data=args.data, student=args.student)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        score = f"{r['metric']} {r['mean']:.2f} {_spread(r)}" if r["mean"] is not None else ""
        print(f"{r['id']:>5} {r['kind']:<5} {r.get('state') or '':<6} {r['strategy'] or '':<24} {r['student'] or '':<14} {r['data'] or '':<10} "
              f"{score:<22} {r['path']}")
    return 0


def _spread(row: dict[str, Any]) -> str:
    """``± 0.41`` over several seeds; ``(1 seed)`` for one, where a standard deviation means nothing."""
    try:
        seeds = json.loads(row.get("info") or "{}").get("seeds")
    except ValueError:
        seeds = None
    return "(1 seed)" if isinstance(seeds, list) and len(seeds) == 1 else f"± {row['std']:.2f}"


def cmd_completion(args: argparse.Namespace) -> int:
    try:
        import argcomplete
    except ImportError:
        raise KdzooError("shell completion needs argcomplete: pip install 'kdzoo[completion]'") from None
    print(argcomplete.shellcode(["kdzoo"], shell=args.shell))
    return 0


def run_plugin_command(name: str, argv: list[str]) -> int:
    """Load the plugins, then parse ``argv`` with the command's own arguments and run it."""
    from .zoo.plugins import load_zoo

    entry = load_zoo().collect().commands.get(name)
    if entry is None:
        raise KdzooError(f"command {name!r} is no longer installed (its plugin failed to load; see kdzoo plugins)")
    parser = _Parser(prog=f"kdzoo {name}", description=entry.meta.get("help") or None)
    if entry.meta.get("setup") is not None:
        entry.meta["setup"](parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # its --help (0) or a bad flag (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    code = entry.obj(args)
    return 0 if code is None else int(code)


COMMANDS = {"distill": cmd_distill, "completion": cmd_completion, "teacher": cmd_teacher, "eval": cmd_eval, "compare": cmd_compare, "bench": cmd_bench, "tune": cmd_tune,
            "report": cmd_report, "runs": cmd_runs, "cache": cmd_cache,
            "strategies": cmd_list, "plugins": cmd_list, "models": cmd_list, "datasets": cmd_list}


ERROR_LINE_LIMIT = 500  # characters of an error line; --debug prints it whole


def readable(line: str, limit: int = ERROR_LINE_LIMIT) -> str:
    """``line`` cut to ``limit`` characters, saying how much was left out and where to see it."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]}... ({len(line) - limit:,} more characters; rerun with --debug for the whole line)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kdzoo`` command; returns the exit code.

    A user-caused error is one line and exit 2 (``--debug`` adds the traceback); an unexpected
    internal error is one line pointing to ``--debug`` and exit 1; a closed stdout pipe
    (``kdzoo strategies | head``) ends quietly.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("KDZOO_DEBUG") == "1"
    previous_debug = os.environ.get("KDZOO_DEBUG")
    if debug:
        os.environ["KDZOO_DEBUG"] = "1"  # plugin loading (kdzoo.zoo.plugins) prints its tracebacks too
    try:
        snapshot = _snapshot(argv)
        parser = _parser(snapshot)
        if "_ARGCOMPLETE" in os.environ:
            _autocomplete(parser)
        first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
        if first is not None and argv[first] in _names(snapshot or {}, "commands"):
            return run_plugin_command(argv[first], argv[first + 1:])
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help/--version (0) or a bad flag (2, one line already printed)
            return exc.code if isinstance(exc.code, int) else 2
        args.listing = snapshot
        debug = getattr(args, "debug", False) or debug
        return COMMANDS[args.command](args)
    except KdzooError as exc:
        if debug:
            traceback.print_exc()
        print(error_line(exc) if debug else readable(error_line(exc)), file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"kdzoo: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:
        # the reader went away; point stdout at devnull so the interpreter's final flush is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("kdzoo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"kdzoo: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              f"(unexpected; rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous_debug is None:
            os.environ.pop("KDZOO_DEBUG", None)


def _snapshot(argv: list[str]) -> dict[str, Any] | None:
    """The listing snapshot, unless the command needs none (``--version``, a built-in command's run).

    ``kdzoo --help``, the listings, completion and plugin commands need it; a built-in command such
    as ``distill`` does not, so a run never pays for building it.
    """
    from .zoo.listing import listing
    from .zoo.plugins import BUILTIN_COMMANDS

    first = next((a for a in argv if not a.startswith("-")), None)
    if "_ARGCOMPLETE" in os.environ or first is None or first not in BUILTIN_COMMANDS or first in (
            "strategies", "models", "datasets", "plugins"):
        if "--version" in argv and first is None:
            return None
        return listing()
    return None


def _autocomplete(parser: argparse.ArgumentParser) -> None:
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)
