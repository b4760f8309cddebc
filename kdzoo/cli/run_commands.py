"""The commands that train or evaluate: ``kdzoo distill``, ``teacher``, ``eval``, ``bench`` and ``tune``.

Each reads its parsed flags, hands them to the Python API (imported when the command runs, so the
other commands never pay for torch) and prints the result; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..contract.errors import KdzooError
from .flags import _config_data
from ..config import DataConfig, make_config
from ..zoo.plugins import load_zoo
from ..zoo.registry import suites_table


def cmd_distill(args: argparse.Namespace) -> int:
    from ..train.runs import distill  # lazy: start-up cost (torch)

    if args.resume:
        distill(None, resume=args.resume)
        return 0
    config = make_config(_config_data(args), args.set)
    distill(config)
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    from ..train.runs import task_teacher  # lazy: start-up cost (torch)

    data = _config_data(args)
    if args.epochs is not None:
        data.setdefault("teacher_train", {})["epochs"] = args.epochs
        data.get("train", {}).pop("epochs", None)
    if not data.get("teacher"):
        raise KdzooError("kdzoo teacher needs --teacher MODEL")
    config = make_config(data, args.set)
    model = task_teacher(config, load_zoo(), log=_to_stderr)[0]  # stdout holds the JSON alone
    from ..train.teacher import teacher_card  # lazy: start-up cost (torch)

    card = teacher_card(config)
    print(json.dumps({"name": model.meta["name"], "val": model.meta.get("val"), "test": model.meta.get("test"),
                      **({"card": str(card)} if card else {})}))
    return 0


def _to_stderr(*args: Any, **kwargs: Any) -> None:
    print(*args, file=sys.stderr, **{k: v for k, v in kwargs.items() if k != "file"})


def cmd_eval(args: argparse.Namespace) -> int:
    from ..data import load_dataset, make_splits  # lazy: start-up cost (torch)
    from ..models.evaluate import evaluate  # lazy: start-up cost (torch)
    from ..models.wrapper import load_model  # lazy: start-up cost (torch)

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


def _executor_settings(args: argparse.Namespace) -> dict:
    return {"executor": args.executor, "executor_options": {"address": args.ray_address},
            "resources": {"gpus": args.gpus, "cpus": args.cpus, "mem": args.mem, "time": args.time,
                          "partition": args.partition, "account": args.account, "sbatch": args.sbatch}}


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.suite import run_bench  # lazy: start-up cost (torch)

    if args.jobs < 1:
        raise KdzooError(f"--jobs must be >= 1, got {args.jobs}")
    if args.list and args.suite is None:
        print(suites_table())
        return 0
    args.suite = args.suite or "smoke"
    suite = Path(args.suite).stem if args.suite.endswith((".yaml", ".yml")) else args.suite
    settings = _executor_settings(args)
    if args.list or args.status:
        from ..bench.suite import list_cells  # lazy: start-up cost (torch)

        print(list_cells(args.suite, args.out or f"runs/bench-{suite}", data_root=args.data_root, status=args.status,
                         executor=settings["executor"], executor_options=settings["executor_options"]))
        return 0
    results = run_bench(args.suite, args.out or f"runs/bench-{suite}", jobs=args.jobs, progress=not args.no_progress,
                        data_root=args.data_root, detach=args.detach, **settings)
    if results.get("detached") is not None:
        return 0
    from ..bench.report import markdown  # lazy: start-up cost (torch)

    print(markdown(results))
    if results.get("failed"):
        cells = "; ".join(f"{r['task']} | {r['pair']} | {r['variant']} | seed {r['seed']}: {r['status']}"
                          for r in results["failed"])
        print(f"kdzoo: error: {len(results['failed'])} bench cell(s) failed (run the bench again to retry them): "
              f"{cells}", file=sys.stderr)
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ..bench.tune import optuna_module  # lazy: start-up cost (torch)

    optuna_module()  # without the extra: one line naming it, before anything is read
    if args.study:
        from ..bench.tune import run_trials, write_outputs  # lazy: start-up cost (torch)

        if not args.storage:
            raise KdzooError("--study needs --storage, the database URL the study lives in")
        study = run_trials(args.storage, args.study, args.trials, log=_to_stderr)
        if args.study_out:
            write_outputs(args.storage, study.study_name, Path(args.study_out), load_zoo())
        states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
        print(json.dumps({"study": study.study_name, "trials": {s: states.count(s) for s in sorted(set(states))}}))
        return 0
    if args.suite:
        from ..bench.tune_suite import tune_suite  # lazy: start-up cost (torch)

        suite = Path(args.suite).stem if args.suite.endswith((".yaml", ".yml")) else args.suite
        summaries = tune_suite(args.suite, args.study_out or f"runs/bench-{suite}", trials=args.trials,
                               jobs=args.jobs, log=_to_stderr, data_root=args.data_root)
        print(json.dumps([_tune_line(s) for s in summaries], indent=2))
        return 0
    from ..bench.tune import tune  # lazy: start-up cost (torch)

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
