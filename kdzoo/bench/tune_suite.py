"""``kdzoo tune --suite``: one study per tuned row of a bench suite (and its tuned ``ce``), in the bench folder.

The bench then reads each study's best trial for the row (:mod:`kdzoo.bench.tuned`); the studies lie in
``BENCH/studies/STUDY/`` unless the suite's ``tune.storage`` names a database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import parse_strategy
from ..contract.errors import ConfigError
from .cells import load_suite, task_settings
from .tune import tune
from .tuned import TUNED, is_tuned, search_for, study_of, tune_options, with_tuned_baseline
from ..zoo.plugins import load_zoo


def tune_suite(suite_name: str, out: str | Path, *, trials: int | None = None, jobs: int = 1, zoo: Any = None,
               log=print, data_root: str | None = None) -> list[dict[str, Any]]:
    """Run (or continue) every study a suite's ``params: tuned`` rows need; returns their summaries.

    Args:
        suite_name: a suite in ``registry.yaml`` or a YAML file.
        out: the bench directory the suite runs in (studies go to ``out/studies``).
        trials: finished trials per study (default: the suite's ``tune.trials``, else 20).
        jobs: worker processes per study.
    """
    zoo = zoo or load_zoo()
    suite = load_suite(suite_name, data_root)
    opts = tune_options(suite)
    wanted = []
    for t_i, task in enumerate(suite.get("tasks") or []):
        base, seeds, train = task_settings(suite, task, t_i)
        for pair in task["pairs"]:
            for entry in with_tuned_baseline(list(task["strategies"])):
                members = parse_strategy(entry)
                if not is_tuned(members):
                    continue
                data = dict(base, teacher=pair.get("teacher"), student=pair["student"], strategy=members,
                            train=dict(train, seeds=seeds), runtime=dict(base.get("runtime") or {}, progress=False,
                                                                          threads=1))
                spec, storage, folder = study_of(suite, data, members, Path(out), zoo)  # validates before any trial
                wanted.append((data, members, storage, folder, seeds))
    if not wanted:
        raise ConfigError(f"suite {suite.get('name')!r} has no tuned rows (a strategy entry with 'params: tuned')")
    summaries = []
    for data, members, storage, folder, seeds in wanted:
        plain = [{k: v for k, v in m.items() if not (k == "params" and v == TUNED)} for m in members]
        searched = [m["name"] for m in members if m.get("params") == TUNED]
        summaries.append(tune(dict(data, strategy=plain), trials=int(opts["trials"] if trials is None else trials),
                              out=folder, storage=storage, seeds=opts["seeds"], search=search_for(opts, searched),
                              lr_range=opts["lr_range"],
                              sampler_seed=int(opts["sampler_seed"]), jobs=jobs, zoo=zoo, log=log, table_seeds=seeds,
                              members_searched=searched))
    return summaries


__all__ = ["tune_suite"]
